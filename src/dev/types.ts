import type { KeyObject } from 'node:crypto';
import type { GraphEmulator } from './graph.js';

/** Public shapes of the Entra emulator (`emulator.ts`), apart so that `demo.ts` can use them. */

/** An RSA key pair (node:crypto) the emulator may use instead of generating one. */
export interface EmulatorKeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

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
  /**
   * The app uses claims mapping: Entra signs its tokens with a key of its own, published only in
   * the metadata and JWKS fetched with `?appid={appId}`.
   */
  claimsMapping?: boolean;
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
   * RSA-2048 key pairs used, in order, before any is generated: for the initial keys, then for
   * rotations and the unpublished key. Generating RSA keys is slow; tests share a few made once.
   */
  keyPairs?: readonly EmulatorKeyPair[];
  /**
   * Authority URL put in metadata and issuers when clients reach the emulator under another name
   * than its listen address (e.g. `http://entra:9400` inside a compose network).
   */
  publicUrl?: string;
  /**
   * `externalId`: a Microsoft Entra External ID (CIAM) tenant, whose v2 issuer is
   * `https://{tid}.ciamlogin.com/{tid}/v2.0` whatever host serves the metadata. Default `workforce`.
   */
  tenantKind?: 'workforce' | 'externalId';
  /**
   * Serve the first tenant as an Azure AD B2C tenant as well: per-user-flow metadata and keys at
   * `/{domain or tenant id}/{user flow}/v2.0/.well-known/openid-configuration`, and
   * `issueToken({ userFlow })` minting B2C-shaped tokens (no `tid`, `tfp` naming the flow).
   */
  b2c?: EmulatorB2cOptions;
  /** Called after every response. */
  onRequest?: (info: EmulatorRequestInfo) => void;
}

export interface EmulatorB2cOptions {
  /** The tenant's domain, also accepted in paths. Default `entraauthzdemo.onmicrosoft.com`. */
  domain?: string;
  /** User flows served (compared case-insensitively). Default `['B2C_1_signupsignin']`. */
  userFlows?: string[];
  /** The "Issuer (iss) claim" setting: `{url}/{tid}/v2.0/` or `{url}/tfp/{tid}/{flow}/v2.0/`. Default `tenant`. */
  issuerForm?: 'tenant' | 'tfp';
}

export interface IssueTokenOptions {
  /** With `b2c`: the user flow the token comes from (`tfp`). Default: the first served. */
  userFlow?: string;
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
  /** The Microsoft Graph slice for group overage (`/v1.0/…/checkMemberGroups`), see src/dev/graph.ts. */
  readonly graph: GraphEmulator;
  /** The object id the emulator puts in `oid`/`sub` of a client's app tokens. */
  oidFor(clientId: string, tenant?: string): string;
  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void>;
}
