/**
 * Test fixtures: RSA keys, a fake Entra (metadata + JWKS served through an injected fetch), a fake
 * clock with a fake scheduler, and token builders. Offline; nothing sleeps.
 */
import { exportJWK, exportSPKI, importPKCS8, importSPKI, SignJWT, type CryptoKey, type JWK } from 'jose';
import { generateEmulatorKeyPair } from '../../../src/dev/emulator.js';
import { sharedKeyPairs } from '../../fixtures/keys.js';
import type { EntraConfig } from '../../../src/config/schema.js';

export const AUTHORITY = 'https://login.microsoftonline.com';
export const TENANT_A = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const TENANT_B = 'c0a8e1d2-3b4c-4d5e-8f90-a1b2c3d4e5f6';
/** A tenant that is not in the allow-list. */
export const TENANT_OTHER = 'deadbeef-0000-4000-8000-00000000beef';
/** Personal Microsoft accounts' tenant: its keys live in the `common` JWKS. */
export const TENANT_MSA = '9188040d-6c67-4c5b-b112-36a304b66dad';
export const API_CLIENT_ID = '6e74172b-be56-4843-9ff4-e66a39bb12e3';
export const API_APP_ID_URI = 'api://orders';
export const CALLER_APP_ID = 'a1b2c3d4-0000-4000-8000-0000000000aa';
export const CALLER_OID = '0f0f0f0f-1111-4222-8333-444444444444';
export const USER_OID = '1e1e1e1e-1111-4222-8333-555555555555';

export const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

export const v2Issuer = (tid: string): string => `${AUTHORITY}/${tid}/v2.0`;
export const v1Issuer = (tid: string): string => `https://sts.windows.net/${tid}/`;

type EntraOverrides = Partial<Omit<EntraConfig, 'keys'>> & { keys?: Partial<EntraConfig['keys']> };

/**
 * The `entra` config section as the schema's defaults would produce it (built directly so these
 * tests do not depend on the whole configuration schema).
 */
export function entraConfig(overrides: EntraOverrides = {}): EntraConfig {
  const { keys, ...rest } = overrides;
  return {
    cloud: 'public',
    authority: AUTHORITY,
    tenants: [TENANT_A, TENANT_B],
    audiences: [API_CLIENT_ID, API_APP_ID_URI],
    tokenVersions: ['1.0', '2.0'],
    clockSkewSeconds: 300,
    tokenHeader: 'authorization',
    maxTokenBytes: 64 * 1024,
    allowTokensWithoutPermissions: false,
    cae: false,
    ...rest,
    tokenCache: rest.tokenCache ?? { maxEntries: 10_000, ttlSeconds: 300 },
    keys: { ttlSeconds: 86_400, refreshIntervalSeconds: 3600, unknownKidCooldownSeconds: 300, fetchTimeoutMs: 2000, maxJwksFetchesPerMinute: 30, ...keys },
  };
}

/** A public JWK as Entra's JWKS publishes it, optionally tied to an issuer. */
export type EntraJwk = JWK & { issuer?: string };

export interface TestKey {
  readonly kid: string;
  readonly x5t: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Public JWK as Entra publishes it (kty, use, kid, x5t, n, e). */
  readonly jwk: JWK;
}

/**
 * One distinct RSA key per kid, from the key pairs shared by the whole test run (fresh ones when
 * more are asked for than are shared).
 */
export async function makeKeys<const K extends readonly string[]>(...kids: K): Promise<{ [I in keyof K]: TestKey }> {
  const shared = sharedKeyPairs();
  const keys = await Promise.all(
    kids.map(async (kid, i) => {
      const pair = shared[i] ?? (await generateEmulatorKeyPair());
      const privateKey = await importPKCS8(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS256');
      const publicKey = await importSPKI(pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'RS256', { extractable: true });
      const { n, e } = await exportJWK(publicKey);
      const x5t = Buffer.from(`thumb-${kid}`).toString('base64url');
      const key: TestKey = { kid, x5t, privateKey, publicKey, jwk: { kty: 'RSA', use: 'sig', kid, x5t, n, e } };
      return key;
    }),
  );
  return keys as { [I in keyof K]: TestKey };
}

/** The key's JWK with an `issuer` property, as the v2 JWKS publishes it. */
export function withIssuer(key: TestKey, issuer: string): EntraJwk {
  return { ...key.jwk, issuer };
}

export async function publicPem(key: TestKey): Promise<string> {
  return exportSPKI(key.publicKey);
}

export type Version = '1.0' | '2.0';

/**
 * A fake Entra: per-tenant v1/v2 metadata and JWKS. Everything it serves can be changed, failed
 * or replaced by a test; every request is recorded.
 */
export function createFakeEntra() {
  const jwks = new Map<string, EntraJwk[]>();
  const overrides = new Map<string, () => Response>();
  const requests: string[] = [];
  let down = false;

  const id = (tenant: string, version: Version): string => `${tenant}|${version}`;
  const metadataUrl = (tenant: string, version: Version): string =>
    version === '2.0'
      ? `${AUTHORITY}/${tenant}/v2.0/.well-known/openid-configuration`
      : `${AUTHORITY}/${tenant}/.well-known/openid-configuration`;
  const jwksUrl = (tenant: string, version: Version): string =>
    version === '2.0' ? `${AUTHORITY}/${tenant}/discovery/v2.0/keys` : `${AUTHORITY}/${tenant}/discovery/keys`;

  const json = (body: unknown): Response =>
    new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });

  const fetch: typeof globalThis.fetch = async (input) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    requests.push(url);
    if (down) throw new TypeError('fetch failed');
    const override = overrides.get(url);
    if (override) return override();
    for (const [key, keys] of jwks) {
      const [tenant, version] = key.split('|') as [string, Version];
      if (url === metadataUrl(tenant, version)) {
        return json({
          // v2 metadata uses the template form here to exercise `{tenantid}` substitution.
          issuer: version === '2.0' ? `${AUTHORITY}/{tenantid}/v2.0` : v1Issuer(tenant),
          jwks_uri: jwksUrl(tenant, version),
          id_token_signing_alg_values_supported: ['RS256'],
        });
      }
      if (url === jwksUrl(tenant, version)) return json({ keys });
    }
    return new Response('not found', { status: 404 });
  };

  return {
    fetch,
    requests,
    metadataUrl,
    jwksUrl,
    setKeys(tenant: string, version: Version, keys: EntraJwk[]): void {
      jwks.set(id(tenant, version), keys);
    },
    /** Serves the same keys for both versions: v2 keys carry the issuer template, v1 keys none. */
    publish(tenant: string, keys: TestKey[]): void {
      jwks.set(id(tenant, '2.0'), keys.map((k) => withIssuer(k, `${AUTHORITY}/{tenantid}/v2.0`)));
      jwks.set(id(tenant, '1.0'), keys.map((k) => k.jwk));
    },
    override(url: string, respond: () => Response): void {
      overrides.set(url, respond);
    },
    clearOverrides(): void {
      overrides.clear();
    },
    setDown(value: boolean): void {
      down = value;
    },
    count(url: string): number {
      return requests.filter((r) => r === url).length;
    },
  };
}
export type FakeEntra = ReturnType<typeof createFakeEntra>;

/** A frozen clock and a scheduler whose timers run only when the test advances time. */
export function createFakeTime(start = T0) {
  let t = start;
  interface Timer {
    due: number;
    fn: () => Promise<void>;
    cancelled: boolean;
  }
  const timers: Timer[] = [];
  return {
    now: (): number => t,
    schedule: (fn: () => Promise<void>, ms: number): (() => void) => {
      const timer: Timer = { due: t + ms, fn, cancelled: false };
      timers.push(timer);
      return () => {
        timer.cancelled = true;
      };
    },
    /** Moves the clock forward, running (and awaiting) every timer that falls due on the way. */
    async advance(ms: number): Promise<void> {
      const target = t + ms;
      for (;;) {
        const live = timers.filter((x) => !x.cancelled && x.due <= target).sort((a, b) => a.due - b.due);
        const next = live[0];
        if (!next) break;
        next.cancelled = true;
        t = Math.max(t, next.due);
        await next.fn();
      }
      t = target;
    },
    pendingTimers(): number {
      return timers.filter((x) => !x.cancelled).length;
    },
  };
}
export type FakeTime = ReturnType<typeof createFakeTime>;

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Claims of a v2 delegated (user) token for TENANT_A, valid for an hour from `now`. */
export function v2UserClaims(nowMs: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(nowMs / 1000);
  return {
    aud: API_CLIENT_ID,
    iss: v2Issuer(TENANT_A),
    iat,
    nbf: iat,
    exp: iat + 3600,
    azp: CALLER_APP_ID,
    azpacr: '0',
    name: 'Ada',
    oid: USER_OID,
    sub: 'user-pairwise-sub',
    scp: 'Orders.Read Orders.Write',
    tid: TENANT_A,
    uti: 'uti-v2-user',
    ver: '2.0',
    ...extra,
  };
}

/** Claims of a v1 app-only (client credentials / managed identity) token for TENANT_A. */
export function v1AppClaims(nowMs: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(nowMs / 1000);
  return {
    aud: API_APP_ID_URI,
    iss: v1Issuer(TENANT_A),
    iat,
    nbf: iat,
    exp: iat + 3600,
    appid: CALLER_APP_ID,
    appidacr: '2',
    idtyp: 'app',
    oid: CALLER_OID,
    sub: CALLER_OID,
    roles: ['Orders.ReadAll'],
    tid: TENANT_A,
    uti: 'uti-v1-app',
    ver: '1.0',
    ...extra,
  };
}

/** Signs claims with RS256; `header` replaces the default `{ typ, kid }` parameters. */
export async function signToken(
  key: TestKey,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = { typ: 'JWT', kid: key.kid },
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ ...header, alg: 'RS256' }).sign(key.privateKey);
}

/** Signs arbitrary header and payload bytes with RS256, bypassing any library checks. */
export async function signRaw(key: TestKey, header: unknown, payload: unknown): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', key.privateKey, new TextEncoder().encode(input));
  return `${input}.${Buffer.from(sig).toString('base64url')}`;
}

export function unsignedToken(header: unknown, payload: unknown): string {
  return `${b64(header)}.${b64(payload)}.`;
}
