import { createHash, KeyObject, randomBytes, randomUUID, sign, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { DEMO } from './demo.js';
import { selfSignedCertificate, x5tOf } from './x509.js';

export { DEMO, type DemoValues } from './demo.js';

/**
 * A local, offline Microsoft Entra ID look-alike for dev mode and integration tests.
 *
 * It serves Entra's real paths on loopback HTTP — v1 and v2 OpenID metadata, both JWKS documents,
 * the v2 (and v1) token endpoint for the client-credentials grant — and mints Entra-shaped access
 * tokens directly for tests. What it mimics on purpose, because the server must cope with it:
 *
 * - v1 tokens are issued by `https://sts.windows.net/{tid}/` whatever the emulator's URL is (the
 *   v1 issuer never carries the authority host); v2 tokens by `{url}/{tid}/v2.0`.
 * - The token version follows the API's `accessTokenVersion`, not the endpoint the client used.
 * - JWKS keys carry no `alg`; v2 keys carry the `issuer` template `{url}/{tenantid}/v2.0` with the
 *   literal `{tenantid}` placeholder; v1 keys carry none.
 * - `kid` equals `x5t`, the base64url SHA-1 of a real (self-signed) DER certificate published in
 *   `x5c`, exactly as Entra does. v1 token headers carry `x5t` as well as `kid`.
 * - All keys are shared by every tenant, and several are published at once (two by default: the
 *   current signer and a standby), so a verifier that picks "the" key without matching `kid` (or
 *   `x5t` for x5t-only tokens) fails in tests as it would against Entra.
 *
 * Every instance holds its own state; nothing is module-level mutable.
 */

export interface EmulatorApi {
  /** GUID: the API's client id (v2 `aud`). */
  appId: string;
  /** App ID URI, e.g. `api://entra-authz-demo` (v1 `aud` when the client asked for it). */
  identifierUri: string;
  /** The app registration's `accessTokenAcceptedVersion`: decides the token version issued for it. */
  accessTokenVersion: 1 | 2;
  appRoles: string[];
  /** Delegated permissions (`scp` in user tokens). */
  scopes: string[];
}

export interface EmulatorClient {
  /** GUID. */
  clientId: string;
  clientSecret: string;
  displayName: string;
  /** The tenant the client's service principal lives in: the only tenant it can get tokens from. */
  tenantId: string;
  /** App role assignments: API appId → role values. */
  roles: Record<string, string[]>;
}

/** One line per HTTP request, for dev-mode logging. */
export interface EmulatorRequestInfo {
  method: string;
  path: string;
  status: number;
}

export interface EmulatorOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0 (an ephemeral port; read `url`). */
  port?: number;
  /** Tenant GUIDs served. Default `[DEMO.tenantId]`. */
  tenants?: string[];
  /** Default `[DEMO.api]`. */
  apis?: EmulatorApi[];
  /**
   * Default: the three DEMO clients, moved into `tenants[0]` when `tenants` is customised.
   * Every client's `tenantId` must be one of `tenants`.
   */
  clients?: EmulatorClient[];
  /** Millisecond clock for `iat`/`nbf`/`exp` and certificate validity. Default `Date.now`. */
  now?: () => number;
  /** How many keys are published at start (the first signs). Default 2, like Entra's several keys. */
  initialKeys?: number;
  /**
   * Authority URL put in metadata and issuers when clients reach the emulator under another name
   * than its listen address (e.g. `http://entra:9400` inside a compose network).
   */
  publicUrl?: string;
  /** Called after every response. */
  onRequest?: (info: EmulatorRequestInfo) => void;
}

export interface IssueTokenOptions {
  /** `tid` and issuer tenant. Default `tenants[0]`. Any string is accepted (foreign-tenant tests). */
  tenant?: string;
  /** Default: the version the target API is configured for. */
  version?: '1.0' | '2.0';
  /**
   * `aud`. Default: the first API's identifierUri (v1) or appId (v2). When it names a configured
   * API (appId, identifierUri or `spn:{appId}`), that API drives the default version and roles.
   */
  audience?: string;
  /** The calling application (`appid` v1 / `azp` v2). Default: the first client. */
  appId?: string;
  /** Default: a stable per-(tenant, client) GUID for app tokens, a stable demo user for user tokens. */
  oid?: string;
  /** Default for app tokens: the calling client's assignments on the API. Empty → claim omitted. */
  roles?: string[];
  /** Present → a user (delegated) token: space-separated `scp`, `sub` ≠ `oid`, `idtyp: "user"`. */
  scopes?: string[];
  /** Relative to `iat`. Default 3600. Negative values make expired tokens. */
  expiresInSeconds?: number;
  /** Seconds since the epoch. Default `iat`. */
  notBefore?: number;
  /** Seconds since the epoch. Default now (from the `now` clock). */
  issuedAt?: number;
  /** Merged last, may override anything; a value of `undefined` deletes the claim. */
  claims?: Record<string, unknown>;
  /** Merged into the protected header last; `undefined` deletes (e.g. `{ kid: undefined }`). */
  header?: Record<string, unknown>;
  /**
   * Key id to sign with. A key the emulator knows (published, retired or the unpublished one) signs
   * with that key. An unknown kid is put in the header (and as `x5t` in v1) while the current key
   * signs — the "unknown kid" case.
   */
  kid?: string;
}

export type EmulatorFetchKind = 'discovery' | 'jwks' | 'token';

export interface EntraEmulator {
  /** Authority base, e.g. `http://127.0.0.1:39123` (no trailing slash). */
  readonly url: string;
  readonly tenants: readonly string[];
  readonly apis: readonly EmulatorApi[];
  readonly clients: readonly EmulatorClient[];
  /**
   * A correctly RS256-signed Entra-shaped access token. The signature is always RS256 over the
   * header as given, even when `header` overrides `alg` — so attack tests can make tokens whose
   * header lies about their algorithm.
   */
  issueToken(opts?: IssueTokenOptions): Promise<string>;
  /**
   * Valid shape, signed by a key that is in no JWKS. Its kid is fresh unless `opts.kid` is given
   * (e.g. the current kid: "right kid, wrong key").
   */
  signWithUnpublishedKey(opts?: IssueTokenOptions): Promise<string>;
  /** SPKI PEM of a key (default the current signer). Throws on an unknown kid. */
  publicKeyPem(kid?: string): string;
  /**
   * Adds a new signing key (new kid, published at once and the current signer) and returns its kid.
   * `retireOld` removes every previous key from the JWKS (they can still sign via `kid`).
   */
  rotateKeys(opts?: { retireOld?: boolean }): Promise<string>;
  readonly currentKid: string;
  /** Kids in the JWKS, in publication order. */
  readonly publishedKids: readonly string[];
  /** `false` → every discovery/JWKS/token request answers 503 (Entra down). */
  setAvailable(up: boolean): void;
  /** Delays discovery/JWKS/token responses by this many ms (fetch-timeout tests). 0 = off. */
  setResponseDelay(ms: number): void;
  /**
   * Requests received on that kind of endpoint with an allowed method — including those answered
   * 503 (unavailable) or 400 (unknown tenant): every attempt the server makes counts.
   */
  fetchCount(kind: EmulatorFetchKind): number;
  resetCounts(): void;
  /** The object id the emulator puts in `oid`/`sub` of a client's app tokens. */
  oidFor(clientId: string, tenant?: string): string;
  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void>;
}

interface SigningKey {
  kid: string;
  x5t: string;
  privateKey: KeyObject;
  n: string;
  e: string;
  spkiPem: string;
  certDer: Buffer;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Entra's multi-tenant aliases: metadata and keys are served, with issuer templates. */
const TENANT_ALIASES = new Set(['common', 'organizations']);
const MAX_BODY_BYTES = 64 * 1024;
const MAX_DRAIN_BYTES = 16 * MAX_BODY_BYTES;
const TOKEN_LIFETIME_SECONDS = 3600;
const CERT_COMMON_NAME = 'accounts.accesscontrol.windows.net';
const CERT_VALIDITY_MS = 5 * 365 * 24 * 3600 * 1000;

/** A deterministic RFC 4122 version-5-shaped GUID from a name, stable across restarts. */
function stableGuid(name: string): string {
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

function entraTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

async function generateSigningKey(nowMs: number): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const spkiPem = await exportSPKI(publicKey);
  const privateKeyObject = KeyObject.from(privateKey);
  const spkiDer = KeyObject.from(publicKey).export({ format: 'der', type: 'spki' });
  const certDer = selfSignedCertificate({
    spkiDer,
    privateKey: privateKeyObject,
    commonName: CERT_COMMON_NAME,
    notBefore: new Date(nowMs),
    notAfter: new Date(nowMs + CERT_VALIDITY_MS),
  });
  const x5t = x5tOf(certDer);
  if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') throw new Error('unexpected RSA JWK export');
  return { kid: x5t, x5t, privateKey: privateKeyObject, n: jwk.n, e: jwk.e, spkiPem, certDer };
}

function validateOptions(tenants: string[], apis: EmulatorApi[], clients: EmulatorClient[]): void {
  const problems: string[] = [];
  if (tenants.length === 0) problems.push('tenants: at least one tenant is required');
  for (const t of tenants) if (!GUID.test(t)) problems.push(`tenants: ${JSON.stringify(t)} is not a GUID`);
  if (new Set(tenants).size !== tenants.length) problems.push('tenants: duplicates');
  for (const a of apis) {
    if (!GUID.test(a.appId)) problems.push(`apis: appId ${JSON.stringify(a.appId)} is not a GUID`);
    if (!a.identifierUri) problems.push(`apis[${a.appId}]: identifierUri is empty`);
    if (a.accessTokenVersion !== 1 && a.accessTokenVersion !== 2) {
      problems.push(`apis[${a.appId}]: accessTokenVersion must be 1 or 2`);
    }
  }
  if (new Set(apis.map((a) => a.appId)).size !== apis.length) problems.push('apis: duplicate appId');
  for (const c of clients) {
    if (!GUID.test(c.clientId)) problems.push(`clients: clientId ${JSON.stringify(c.clientId)} is not a GUID`);
    if (!c.clientSecret) problems.push(`clients[${c.clientId}]: clientSecret is empty`);
    if (!tenants.includes(c.tenantId)) problems.push(`clients[${c.clientId}]: tenant ${c.tenantId} is not served`);
  }
  if (new Set(clients.map((c) => c.clientId)).size !== clients.length) problems.push('clients: duplicate clientId');
  if (problems.length > 0) throw new TypeError(`invalid emulator options:\n  ${problems.join('\n  ')}`);
}

class HttpError {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** Starts an emulator on loopback (port 0 by default). Generates its keys before resolving. */
export async function startEntraEmulator(opts: EmulatorOptions = {}): Promise<EntraEmulator> {
  const now = opts.now ?? Date.now;
  const host = opts.host ?? '127.0.0.1';
  const tenantsCustomised = opts.tenants !== undefined;
  const tenants = (opts.tenants ?? [DEMO.tenantId]).map((t) => t.toLowerCase());
  const apis: EmulatorApi[] = (opts.apis ?? [DEMO.api]).map((a) => ({
    ...a,
    appId: a.appId.toLowerCase(),
    appRoles: [...a.appRoles],
    scopes: [...a.scopes],
  }));
  const clients: EmulatorClient[] = (
    opts.clients ??
    Object.values(DEMO.clients).map((c) => (tenantsCustomised ? { ...c, tenantId: tenants[0] ?? c.tenantId } : c))
  ).map((c) => ({
    ...c,
    clientId: c.clientId.toLowerCase(),
    tenantId: c.tenantId.toLowerCase(),
    roles: Object.fromEntries(Object.entries(c.roles).map(([k, v]) => [k.toLowerCase(), [...v]])),
  }));
  validateOptions(tenants, apis, clients);
  const initialKeys = opts.initialKeys ?? 2;
  if (!Number.isInteger(initialKeys) || initialKeys < 1) throw new TypeError('initialKeys must be a positive integer');

  // ---- per-instance state -------------------------------------------------------------------------
  const keys = new Map<string, SigningKey>(); // every key ever made, published or not
  let published: string[] = [];
  let current = '';
  let unpublished: Promise<SigningKey> | undefined;
  let available = true;
  let responseDelayMs = 0;
  const counts: Record<EmulatorFetchKind, number> = { discovery: 0, jwks: 0, token: 0 };
  const timers = new Set<NodeJS.Timeout>();
  let url = '';

  for (let i = 0; i < initialKeys; i++) {
    const k = await generateSigningKey(now());
    keys.set(k.kid, k);
    published.push(k.kid);
  }
  current = published[0] ?? '';

  const serverTenant = (t: string): string => t.toLowerCase();
  const findApi = (aud: string): EmulatorApi | undefined => {
    const lower = aud.toLowerCase();
    return apis.find((a) => a.appId === lower || a.identifierUri === aud || `spn:${a.appId}` === lower);
  };
  const oidFor = (clientId: string, tenant?: string): string =>
    stableGuid(`sp:${serverTenant(tenant ?? tenants[0] ?? '')}:${clientId.toLowerCase()}`);

  // ---- token minting ------------------------------------------------------------------------------
  function signCompact(header: Record<string, unknown>, payload: Record<string, unknown>, key: SigningKey): string {
    const input = `${b64url(header)}.${b64url(payload)}`;
    const signature = sign('sha256', Buffer.from(input, 'ascii'), key.privateKey).toString('base64url');
    return `${input}.${signature}`;
  }

  function mint(o: IssueTokenOptions, signer: SigningKey, headerKid: string): string {
    const tenant = o.tenant ?? tenants[0] ?? DEMO.tenantId;
    const matchedApi = o.audience !== undefined ? findApi(o.audience) : apis[0];
    const version = o.version ?? (matchedApi?.accessTokenVersion === 1 ? '1.0' : '2.0');
    const audience = o.audience ?? (matchedApi ? (version === '1.0' ? matchedApi.identifierUri : matchedApi.appId) : '');
    const appId = o.appId ?? clients[0]?.clientId ?? stableGuid('client:default');
    const client = clients.find((c) => c.clientId === appId.toLowerCase());
    const user = o.scopes !== undefined;
    const iat = o.issuedAt ?? Math.floor(now() / 1000);
    const v1Issuer = `https://sts.windows.net/${tenant}/`;
    const roles =
      o.roles ?? (user || !matchedApi || !client ? [] : [...(client.roles[matchedApi.appId] ?? [])]);

    const claims: Record<string, unknown> = {
      aud: audience,
      iss: version === '1.0' ? v1Issuer : `${url}/${tenant}/v2.0`,
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
    merge(claims, o.claims);

    const header: Record<string, unknown> = { typ: 'JWT', alg: 'RS256' };
    // Entra's v1 headers carry x5t and kid (equal); v2 headers only kid.
    if (version === '1.0') header.x5t = keys.get(headerKid)?.x5t ?? headerKid;
    header.kid = headerKid;
    merge(header, o.header);
    return signCompact(header, claims, signer);
  }

  function currentKey(): SigningKey {
    const k = keys.get(current);
    if (!k) throw new Error('emulator has no current key');
    return k;
  }

  // ---- HTTP ---------------------------------------------------------------------------------------
  const entraError = (
    status: number,
    error: string,
    code: number,
    description: string,
    headers: Record<string, string> = {},
  ): HttpError => {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = entraTimestamp(now());
    return new HttpError(
      status,
      {
        error,
        error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
        error_codes: [code],
        timestamp,
        trace_id: traceId,
        correlation_id: correlationId,
        error_uri: `${url}/error?code=${code}`,
      },
      headers,
    );
  };

  const unknownTenant = (tenant: string, error = 'invalid_tenant'): HttpError =>
    entraError(
      400,
      error,
      90002,
      `Tenant '${tenant.slice(0, 100)}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
    );

  /** Resolves the tenant path segment: a served GUID, an alias (metadata/keys only), or throws 400. */
  function resolveTenant(segment: string, allowAlias: boolean): { path: string; issuerTid: string } {
    const t = segment.toLowerCase();
    if (tenants.includes(t)) return { path: t, issuerTid: t };
    if (allowAlias && TENANT_ALIASES.has(t)) return { path: t, issuerTid: '{tenantid}' };
    throw unknownTenant(segment);
  }

  const claimsSupported = [
    'sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host',
    'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash',
    'c_hash', 'email',
  ];
  const cloudFields = (isAlias: boolean) => ({
    tenant_region_scope: isAlias ? null : 'WW',
    cloud_instance_name: 'microsoftonline.com',
    cloud_graph_host_name: 'graph.windows.net',
    msgraph_host: 'graph.microsoft.com',
    rbac_url: 'https://pas.windows.net',
  });

  function discoveryV2(t: { path: string; issuerTid: string }): Record<string, unknown> {
    const base = `${url}/${t.path}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${url}/${t.issuerTid}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: 'https://graph.microsoft.com/oidc/userinfo',
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: claimsSupported,
      kerberos_endpoint: `${base}/kerberos`,
      ...cloudFields(t.issuerTid !== t.path),
    };
  }

  function discoveryV1(t: { path: string; issuerTid: string }): Record<string, unknown> {
    const base = `${url}/${t.path}`;
    return {
      token_endpoint: `${base}/oauth2/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'token id_token', 'token'],
      scopes_supported: ['openid'],
      // The v1 issuer never names the authority host: real Entra and the emulator alike.
      issuer: `https://sts.windows.net/${t.issuerTid}/`,
      microsoft_multi_refresh_token: true,
      authorization_endpoint: `${base}/oauth2/authorize`,
      device_authorization_endpoint: `${base}/oauth2/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/logout`,
      claims_supported: claimsSupported,
      check_session_iframe: `${base}/oauth2/checksession`,
      userinfo_endpoint: `${base}/openid/userinfo`,
      kerberos_endpoint: `${base}/kerberos`,
      ...cloudFields(t.issuerTid !== t.path),
    };
  }

  function jwks(version: 1 | 2): Record<string, unknown> {
    return {
      keys: published.map((kid) => {
        const k = keys.get(kid);
        if (!k) throw new Error(`published kid ${kid} has no key`);
        // No `alg`: Entra omits it, so verifiers must pin RS256 themselves.
        const jwk: Record<string, unknown> = {
          kty: 'RSA',
          use: 'sig',
          kid: k.kid,
          x5t: k.x5t,
          n: k.n,
          e: k.e,
          x5c: [k.certDer.toString('base64')],
        };
        if (version === 2) jwk.issuer = `${url}/{tenantid}/v2.0`;
        return jwk;
      }),
    };
  }

  /**
   * Reads a body of at most MAX_BODY_BYTES. A larger one is drained and discarded (so the client
   * can finish sending and actually read the 413), up to a hard limit beyond which the connection
   * is simply dropped.
   */
  function readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const settle = (fn: () => void) => {
        if (!settled) {
          settled = true;
          fn();
        }
      };
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_DRAIN_BYTES) {
          req.destroy();
          settle(() => reject(new Error('request body far too large')));
        } else if (size <= MAX_BODY_BYTES) {
          chunks.push(chunk);
        }
      });
      req.on('end', () =>
        settle(() =>
          size > MAX_BODY_BYTES
            ? reject(entraError(413, 'invalid_request', 90015, `The request body exceeds ${MAX_BODY_BYTES} bytes.`))
            : resolve(Buffer.concat(chunks)),
        ),
      );
      req.on('error', (err) => settle(() => reject(err)));
      req.on('close', () => settle(() => reject(new Error('request closed before its body was read'))));
    });
  }

  /** Client authentication: `client_secret_post` or `client_secret_basic`, never both (RFC 6749 §2.3). */
  function authenticateClient(req: IncomingMessage, form: URLSearchParams, tenant: string): EmulatorClient {
    let clientId = form.get('client_id') ?? undefined;
    let secret = form.get('client_secret') ?? undefined;
    const authz = req.headers.authorization;
    let basic = false;
    if (authz !== undefined && /^basic\s/i.test(authz)) {
      basic = true;
      if (secret !== undefined) {
        throw entraError(400, 'invalid_request', 90014, 'Client credentials were sent both in the body and in the Authorization header.');
      }
      const decoded = Buffer.from(authz.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const dec = (s: string): string => {
        try {
          return decodeURIComponent(s.replace(/\+/g, ' '));
        } catch {
          return s;
        }
      };
      const basicId = dec(colon < 0 ? decoded : decoded.slice(0, colon));
      if (clientId !== undefined && clientId.toLowerCase() !== basicId.toLowerCase()) {
        throw entraError(400, 'invalid_request', 90014, 'client_id in the body does not match the Authorization header.');
      }
      clientId = basicId;
      secret = colon < 0 ? '' : dec(decoded.slice(colon + 1));
    }
    const challenge: Record<string, string> = basic ? { 'www-authenticate': 'Basic realm="entra-emulator"' } : {};
    if (!clientId) {
      throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_id'.");
    }
    const client = clients.find((c) => c.clientId === clientId.toLowerCase() && c.tenantId === tenant);
    if (!client) {
      throw entraError(
        401,
        'invalid_client',
        700016,
        `Application with identifier '${clientId.slice(0, 100)}' was not found in the directory '${tenant}'.`,
        challenge,
      );
    }
    if (!secret) {
      throw entraError(
        401,
        'invalid_client',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        challenge,
      );
    }
    const a = createHash('sha256').update(secret).digest();
    const b = createHash('sha256').update(client.clientSecret).digest();
    if (!timingSafeEqual(a, b)) {
      throw entraError(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${client.clientId}'.`,
        challenge,
      );
    }
    return client;
  }

  /** Client-credentials grant. `v2` takes `scope={resource}/.default`; v1 (`/oauth2/token`) takes `resource`. */
  async function tokenEndpoint(req: IncomingMessage, segment: string, endpoint: 1 | 2): Promise<[number, unknown, Record<string, string>]> {
    const tenantLower = segment.toLowerCase();
    if (TENANT_ALIASES.has(tenantLower)) {
      throw entraError(
        400,
        'invalid_request',
        50194,
        "Usage of the /common endpoint is not supported for this application. Use a tenant-specific endpoint.",
      );
    }
    if (!tenants.includes(tenantLower)) throw unknownTenant(segment, 'invalid_request');
    const contentType = (req.headers['content-type'] ?? '').toLowerCase();
    const body = await readBody(req);
    if (!contentType.startsWith('application/x-www-form-urlencoded')) {
      throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    }
    const form = new URLSearchParams(body.toString('utf8'));
    for (const name of ['grant_type', 'client_id', 'client_secret', 'scope', 'resource']) {
      if (form.getAll(name).length > 1) {
        throw entraError(400, 'invalid_request', 90014, `The parameter '${name}' was sent more than once.`);
      }
    }
    const grant = form.get('grant_type');
    if (!grant) {
      throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    }
    if (grant !== 'client_credentials') {
      throw entraError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grant.slice(0, 100)}'.`);
    }
    const client = authenticateClient(req, form, tenantLower);

    let resource: string;
    if (endpoint === 2) {
      const scope = form.get('scope');
      if (!scope) {
        throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'scope'.");
      }
      const scopes = scope.split(' ').filter(Boolean);
      const only = scopes[0];
      if (scopes.length !== 1 || only === undefined || !only.endsWith('/.default')) {
        throw entraError(
          400,
          'invalid_scope',
          1002012,
          `The provided value for scope ${scope.slice(0, 200)} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
        );
      }
      resource = only.slice(0, -'/.default'.length);
    } else {
      resource = form.get('resource') ?? '';
      if (!resource) {
        throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'resource'.");
      }
    }
    const api = findApi(resource);
    if (!api) {
      throw entraError(
        400,
        'invalid_scope',
        500011,
        `The resource principal named ${resource.slice(0, 200)} was not found in the tenant named ${tenantLower}.`,
      );
    }
    const version = api.accessTokenVersion === 1 ? '1.0' : '2.0';
    // v1 `aud` is what the client asked for (App ID URI or GUID); v2 `aud` is always the GUID.
    const audience = version === '1.0' ? (resource.toLowerCase() === api.appId ? api.appId : resource) : api.appId;
    const iat = Math.floor(now() / 1000);
    const key = currentKey();
    const accessToken = mint(
      {
        tenant: tenantLower,
        version,
        audience,
        appId: client.clientId,
        roles: client.roles[api.appId] ?? [],
        issuedAt: iat,
      },
      key,
      key.kid,
    );
    const noStore = { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' };
    if (endpoint === 2) {
      return [
        200,
        { token_type: 'Bearer', expires_in: TOKEN_LIFETIME_SECONDS, ext_expires_in: TOKEN_LIFETIME_SECONDS, access_token: accessToken },
        noStore,
      ];
    }
    return [
      200,
      {
        token_type: 'Bearer',
        expires_in: String(TOKEN_LIFETIME_SECONDS),
        ext_expires_in: String(TOKEN_LIFETIME_SECONDS),
        expires_on: String(iat + TOKEN_LIFETIME_SECONDS),
        not_before: String(iat),
        resource,
        access_token: accessToken,
      },
      noStore,
    ];
  }

  function delay(): Promise<void> {
    if (responseDelayMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, responseDelayMs);
      timers.add(t);
    });
  }

  type Route =
    | { kind: 'discovery'; version: 1 | 2; tenant: string }
    | { kind: 'jwks'; version: 1 | 2; tenant: string }
    | { kind: 'token'; version: 1 | 2; tenant: string }
    | { kind: 'rotate' };

  function route(path: string): Route | undefined {
    if (path === '/_emulator/rotate') return { kind: 'rotate' };
    const m = /^\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return undefined;
    const tenant = decodeSegment(m[1] ?? '');
    switch (m[2]) {
      case 'v2.0/.well-known/openid-configuration':
        return { kind: 'discovery', version: 2, tenant };
      case '.well-known/openid-configuration':
        return { kind: 'discovery', version: 1, tenant };
      case 'discovery/v2.0/keys':
        return { kind: 'jwks', version: 2, tenant };
      case 'discovery/keys':
        return { kind: 'jwks', version: 1, tenant };
      case 'oauth2/v2.0/token':
        return { kind: 'token', version: 2, tenant };
      case 'oauth2/token':
        return { kind: 'token', version: 1, tenant };
      default:
        return undefined;
    }
  }

  function decodeSegment(s: string): string {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  }

  async function handle(req: IncomingMessage): Promise<[number, unknown, Record<string, string>]> {
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    const query = new URLSearchParams((req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?') + 1) : '');
    const r = route(rawPath);
    if (!r) throw new HttpError(404, { error: 'not_found', error_description: 'No such endpoint on the Entra emulator.' });
    const allowed = r.kind === 'token' || r.kind === 'rotate' ? ['POST'] : ['GET', 'HEAD'];
    if (!allowed.includes(req.method ?? '')) {
      throw new HttpError(
        405,
        { error: 'method_not_allowed', error_description: `Use ${allowed.join(' or ')}.` },
        { allow: allowed.join(', ') },
      );
    }
    if (r.kind === 'rotate') {
      // A dev convenience and test control: it works even while "Entra" is down.
      const kid = await rotateKeys({ retireOld: query.get('retireOld') === 'true' });
      return [200, { kid }, { 'cache-control': 'no-store' }];
    }
    counts[r.kind]++;
    if (!available) {
      throw new HttpError(
        503,
        { error: 'temporarily_unavailable', error_description: 'The Entra emulator is set unavailable.' },
        { 'retry-after': '1' },
      );
    }
    await delay();
    const metaHeaders = { 'cache-control': 'max-age=86400, private', 'access-control-allow-origin': '*' };
    switch (r.kind) {
      case 'discovery': {
        const t = resolveTenant(r.tenant, true);
        return [200, r.version === 2 ? discoveryV2(t) : discoveryV1(t), metaHeaders];
      }
      case 'jwks':
        resolveTenant(r.tenant, true);
        return [200, jwks(r.version), metaHeaders];
      case 'token':
        return tokenEndpoint(req, r.tenant, r.version);
    }
  }

  function respond(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
    const payload = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(payload),
      'x-ms-request-id': randomUUID(),
      ...headers,
    });
    res.end(payload);
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    res.on('finish', () => {
      try {
        opts.onRequest?.({ method: req.method ?? '', path, status: res.statusCode });
      } catch {
        // a logging callback must not break the emulator
      }
    });
    handle(req)
      .then(([status, body, headers]) => respond(res, status, body, headers))
      .catch((err: unknown) => {
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        if (err instanceof HttpError) respond(res, err.status, err.body, err.headers);
        else respond(res, 500, { error: 'server_error', error_description: 'Internal emulator error.' }, {});
      });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  url = opts.publicUrl?.replace(/\/+$/, '') ?? `http://${urlHost}:${addr.port}`;

  async function rotateKeys(o: { retireOld?: boolean } = {}): Promise<string> {
    const k = await generateSigningKey(now());
    keys.set(k.kid, k);
    published = o.retireOld ? [k.kid] : [...published, k.kid];
    current = k.kid;
    return k.kid;
  }

  let closing: Promise<void> | undefined;

  const emulator: EntraEmulator = {
    get url() {
      return url;
    },
    tenants: Object.freeze([...tenants]),
    apis: Object.freeze(apis.map((a) => Object.freeze(a))),
    clients: Object.freeze(clients.map((c) => Object.freeze(c))),
    async issueToken(o: IssueTokenOptions = {}) {
      const known = o.kid !== undefined ? keys.get(o.kid) : undefined;
      if (known) return mint(o, known, known.kid);
      return mint(o, currentKey(), o.kid ?? current);
    },
    async signWithUnpublishedKey(o: IssueTokenOptions = {}) {
      unpublished ??= generateSigningKey(now()).then((k) => {
        keys.set(k.kid, k); // known (so `kid:` and publicKeyPem work) but never published
        return k;
      });
      const k = await unpublished;
      return mint(o, k, o.kid ?? k.kid);
    },
    publicKeyPem(kid?: string) {
      const k = keys.get(kid ?? current);
      if (!k) throw new Error(`unknown kid ${String(kid)}`);
      return k.spkiPem;
    },
    rotateKeys,
    get currentKid() {
      return current;
    },
    get publishedKids() {
      return Object.freeze([...published]);
    },
    setAvailable(up: boolean) {
      available = up;
    },
    setResponseDelay(ms: number) {
      responseDelayMs = Math.max(0, ms);
    },
    fetchCount(kind: EmulatorFetchKind) {
      return counts[kind];
    },
    resetCounts() {
      counts.discovery = counts.jwks = counts.token = 0;
    },
    oidFor,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
  return emulator;
}
