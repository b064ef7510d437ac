import { createHash, randomBytes, sign } from 'node:crypto';
import { entraIssuer } from '../authn/entra/urls.js';
import { DEMO } from './demo.js';
import type { KeyRing, SigningKey } from './keys.js';
import type { TokenVersion } from '../authn/entra/urls.js';
import type { EmulatorApi, EmulatorClient, IssueTokenOptions } from './types.js';

/**
 * Entra-shaped access tokens: the claims Entra puts in v1 and v2 app and user tokens, signed RS256
 * by one of the emulator's keys.
 */

export const TOKEN_LIFETIME_SECONDS = 3600;

/** A deterministic RFC 4122 version-5-shaped GUID from a name, stable across restarts. */
export function stableGuid(name: string): string {
  const h = createHash('sha1').update(`entra-authz-emulator:${name}`).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** Applies `patch` onto `target`: `undefined` values delete. */
function merge(target: Record<string, unknown>, patch: Record<string, unknown> | undefined): void {
  if (!patch) return;
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete target[k];
    else target[k] = v;
  }
}

function signCompact(header: Record<string, unknown>, payload: Record<string, unknown>, key: SigningKey): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const signature = sign('sha256', Buffer.from(input, 'ascii'), key.privateKey).toString('base64url');
  return `${input}.${signature}`;
}

export interface TokenMinterDeps {
  readonly tenants: readonly string[];
  readonly apis: readonly EmulatorApi[];
  readonly clients: readonly EmulatorClient[];
  readonly keys: KeyRing;
  readonly now: () => number;
  /** The emulator's authority URL (known only once it listens). */
  readonly url: () => string;
  /** The issuer of a tenant's tokens (or of the `{tenantid}` template) per version. */
  readonly issuer: (tenant: string, version: TokenVersion) => string;
  /** An Azure AD B2C tenant: every token comes from one of its user flows. */
  readonly b2c?: { readonly userFlows: readonly string[]; issuer(tenant: string, userFlow: string): string };
}

/** The issuer the emulator uses: Entra's, or for External ID tenants `https://{tid}.ciamlogin.com/{tid}/v2.0`. */
export function emulatedIssuer(url: string, tenantKind: 'workforce' | 'externalId', tenant: string, version: TokenVersion): string {
  return tenantKind === 'externalId' && version === '2.0' ? `https://${tenant}.ciamlogin.com/${tenant}/v2.0` : entraIssuer(url, tenant, version);
}

export interface TokenMinter {
  /** Signs a token with `signer`, naming `headerKid` in its header. */
  mint(o: IssueTokenOptions, signer: SigningKey, headerKid: string): string;
  findApi(audience: string): EmulatorApi | undefined;
  /** The issuer of a tenant's tokens (or of the `{tenantid}` template) per version. */
  issuer(tenant: string, version: TokenVersion): string;
  oidFor(clientId: string, tenant?: string): string;
}

export function createTokenMinter(deps: TokenMinterDeps): TokenMinter {
  const { tenants, apis, clients, keys, now } = deps;
  const findApi = (aud: string): EmulatorApi | undefined => {
    const lower = aud.toLowerCase();
    return apis.find((a) => a.appId === lower || a.identifierUri === aud || `spn:${a.appId}` === lower);
  };
  const oidFor = (clientId: string, tenant?: string): string =>
    stableGuid(`sp:${(tenant ?? tenants[0] ?? '').toLowerCase()}:${clientId.toLowerCase()}`);

  function mint(o: IssueTokenOptions, signer: SigningKey, headerKid: string): string {
    const tenant = o.tenant ?? tenants[0] ?? DEMO.tenantId;
    const matchedApi = o.audience !== undefined ? findApi(o.audience) : apis[0];
    const version = o.version ?? (matchedApi?.accessTokenVersion === 1 ? '1.0' : '2.0');
    const audience = o.audience ?? (matchedApi ? (version === '1.0' ? matchedApi.identifierUri : matchedApi.appId) : '');
    const appId = o.appId ?? clients[0]?.clientId ?? stableGuid('client:default');
    const client = clients.find((c) => c.clientId === appId.toLowerCase());
    const user = o.scopes !== undefined;
    const iat = o.issuedAt ?? Math.floor(now() / 1000);
    const v1Issuer = entraIssuer(deps.url(), tenant, '1.0');
    const roles =
      o.roles ?? (user || !matchedApi || !client ? [] : [...(client.roles[matchedApi.appId] ?? [])]);

    const claims: Record<string, unknown> = {
      aud: audience,
      iss: deps.issuer(tenant, version),
      iat,
      nbf: o.notBefore ?? iat,
      exp: iat + (o.expiresInSeconds ?? TOKEN_LIFETIME_SECONDS),
      aio: randomBytes(48).toString('base64url'),
    };
    if (version === '1.0') {
      claims.appid = appId;
      claims.appidacr = user ? '0' : '1';
    } else {
      claims.azp = appId;
      claims.azpacr = user ? '0' : '1';
    }
    if (user) {
      const oid = o.oid ?? stableGuid(`user:${tenant.toLowerCase()}:demo`);
      claims.idtyp = 'user';
      claims.name = 'Demo User';
      if (version === '1.0') {
        claims.amr = ['pwd'];
        claims.unique_name = claims.upn = 'demo.user@entra-authz.example';
      } else {
        claims.preferred_username = 'demo.user@entra-authz.example';
      }
      claims.oid = oid;
      // Entra's user `sub` is pairwise per application, never the oid.
      claims.sub = createHash('sha256').update(`sub:${tenant}:${appId}:${oid}`).digest('base64url');
      if (roles.length > 0) claims.roles = roles;
      claims.scp = o.scopes?.join(' ') ?? '';
    } else {
      const oid = o.oid ?? oidFor(appId, tenant);
      claims.idp = v1Issuer;
      claims.idtyp = 'app';
      claims.oid = oid;
      if (roles.length > 0) claims.roles = roles;
      claims.sub = oid;
    }
    claims.rh = `0.${randomBytes(40).toString('base64url')}.`;
    claims.tid = tenant;
    claims.uti = randomBytes(16).toString('base64url');
    claims.ver = version;
    if (deps.b2c) {
      // B2C access tokens: no tenant id, the user flow in `tfp`, and `ver` 1.0 from v2.0 endpoints.
      const named = o.userFlow ?? deps.b2c.userFlows[0] ?? '';
      const userFlow = deps.b2c.userFlows.find((f) => f.toLowerCase() === named.toLowerCase()) ?? named;
      delete claims.tid;
      claims.iss = deps.b2c.issuer(tenant, userFlow);
      claims.tfp = userFlow;
      claims.ver = '1.0';
    }
    merge(claims, o.claims);

    const header: Record<string, unknown> = { typ: 'JWT', alg: 'RS256' };
    // Entra's v1 headers carry x5t and kid (equal); v2 headers only kid.
    if (version === '1.0') header.x5t = keys.get(headerKid)?.x5t ?? headerKid;
    header.kid = headerKid;
    merge(header, o.header);
    return signCompact(header, claims, signer);
  }

  return { mint, findApi, oidFor, issuer: deps.issuer };
}
