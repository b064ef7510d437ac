/**
 * Fetching and reading Entra's OpenID metadata and JWKS documents: one bounded fetch, a failure
 * that says why (refused, DNS, TLS, timeout, HTTP status, bad document), and the parsing and RS256
 * key import of what came back. No state: the refresh state machine lives in `keystore.ts`.
 */
import { importJWK, type CryptoKey } from 'jose';
import { z } from 'zod';
import { TENANT_ID_TEMPLATE } from './urls.js';

/** Largest discovery or JWKS document accepted (Entra's are a few KiB). */
const MAX_DOCUMENT_CHARS = 1024 * 1024;
/** Most keys read from one JWKS (Entra publishes fewer than ten). */
export const MAX_KEYS_PER_SET = 100;
/** RS256 with a shorter modulus is refused (jose enforces the same at verification time). */
const MIN_RSA_BITS = 2048;

/**
 * Why a fetch failed, in the words an operator acts on: a firewall (`connection_refused`), a name
 * (`dns`), certificates (`tls`), a slow or hung endpoint (`timeout`), Entra's answer (`http_status`),
 * or what it sent (`invalid_document`).
 */
export type FetchFailureKind =
  | 'connection_refused'
  | 'dns'
  | 'tls'
  | 'timeout'
  | 'http_status'
  | 'invalid_document'
  | 'stopped'
  | 'network';

export class FetchFailure extends Error {
  override name = 'FetchFailure';
  constructor(
    readonly kind: FetchFailureKind,
    message: string,
  ) {
    super(message);
  }
}

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The first `code` along an error's `cause` chain (undici puts the socket error in `cause`). */
function causeCode(err: unknown): { code: string | undefined; message: string } {
  let current: unknown = err;
  let message = err instanceof Error ? err.message : String(err);
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return { code, message: current.message };
    current = current.cause;
    if (current instanceof Error) message = current.message;
  }
  return { code: undefined, message };
}

/** Classifies an error thrown by `fetch` (or while reading its body). */
export function classifyFetchError(err: unknown): { kind: FetchFailureKind; why: string } {
  const { code, message } = causeCode(err);
  if (code === 'ECONNREFUSED') return { kind: 'connection_refused', why: `connection refused (${message})` };
  if (code !== undefined && DNS_CODES.has(code)) return { kind: 'dns', why: `DNS lookup failed (${code})` };
  if (code !== undefined && TIMEOUT_CODES.has(code)) return { kind: 'timeout', why: `timed out (${code})` };
  if (code !== undefined && (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code))) {
    return { kind: 'tls', why: `TLS failed (${code}: ${message})` };
  }
  return { kind: 'network', why: code !== undefined ? `${code}: ${message}` : message };
}

export interface FetchJsonOptions {
  readonly timeoutMs: number;
  /** Aborts the fetch when the store stops. */
  readonly stopSignal: AbortSignal;
}

/**
 * GETs one JSON document within `timeoutMs`, body included. The timer is held here and cleared in
 * `finally`: `AbortSignal.timeout` combined through `AbortSignal.any` loses its timer to garbage
 * collection on Node 20, which left fetches hanging until undici's own 300 s limit.
 */
export async function fetchJson(fetch: typeof globalThis.fetch, url: string, opts: FetchJsonOptions): Promise<unknown> {
  if (opts.stopSignal.aborted) throw new FetchFailure('stopped', `${url}: key store stopped`);
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, opts.timeoutMs);
  const onStop = (): void => controller.abort();
  opts.stopSignal.addEventListener('abort', onStop, { once: true });
  try {
    const res = await fetch(url, { signal: controller.signal, headers: { accept: 'application/json' } });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new FetchFailure('http_status', `${url} answered HTTP ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > MAX_DOCUMENT_CHARS) {
      await res.body?.cancel().catch(() => {});
      throw new FetchFailure('invalid_document', `${url} is too large (${declared} bytes)`);
    }
    const text = await res.text();
    if (text.length > MAX_DOCUMENT_CHARS) throw new FetchFailure('invalid_document', `${url} is too large`);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new FetchFailure('invalid_document', `${url} is not JSON`);
    }
  } catch (err) {
    if (err instanceof FetchFailure) throw err;
    if (timedOut) throw new FetchFailure('timeout', `${url} timed out after ${opts.timeoutMs} ms`);
    if (opts.stopSignal.aborted) throw new FetchFailure('stopped', `${url}: key store stopped`);
    const { kind, why } = classifyFetchError(err);
    throw new FetchFailure(kind, `${url} failed: ${why}`);
  } finally {
    clearTimeout(timer);
    opts.stopSignal.removeEventListener('abort', onStop);
  }
}

export interface Metadata {
  /** The one exact issuer accepted for the tenant and version. */
  readonly issuer: string;
  readonly jwksUri: string;
}

const metadataSchema = z.object({
  issuer: z.string().min(1).max(2048),
  jwks_uri: z.string().min(1).max(2048),
});

/** A URL from a metadata document must be http(s), and plain http only if the authority is. */
function checkedUrl(raw: string, what: string, authorityProtocol: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new FetchFailure('invalid_document', `${what} is not a URL`);
  }
  const allowed = authorityProtocol === 'http:' ? ['http:', 'https:'] : ['https:'];
  if (!allowed.includes(url.protocol)) throw new FetchFailure('invalid_document', `${what} must use ${allowed.join(' or ')}`);
  return url.href;
}

/** Reads a tenant's OpenID metadata: its exact issuer and its JWKS URL. */
export function parseMetadata(body: unknown, tenant: string, url: string, authorityProtocol: string): Metadata {
  const parsed = metadataSchema.safeParse(body);
  if (!parsed.success) throw new FetchFailure('invalid_document', `discovery ${url} lacks a valid issuer/jwks_uri`);
  // Multi-tenant metadata publishes `{tenantid}`, tenant metadata the GUID itself. Either way
  // the result is the one exact issuer string accepted for this tenant and version.
  const issuer = parsed.data.issuer.split(TENANT_ID_TEMPLATE).join(tenant);
  // The issuer must name the tenant: metadata that does not (a misconfigured authority, a
  // `common`-style document) would otherwise let one issuer stand for every tenant.
  if (!issuer.toLowerCase().includes(tenant)) {
    throw new FetchFailure('invalid_document', `discovery ${url} issuer does not name the tenant`);
  }
  return { issuer, jwksUri: checkedUrl(parsed.data.jwks_uri, `discovery ${url} jwks_uri`, authorityProtocol) };
}

export interface KeyEntry {
  readonly kid: string | undefined;
  readonly x5t: string | undefined;
  readonly issuer: string | undefined;
  readonly key: CryptoKey;
}

export interface LoadedKeys {
  readonly byKid: ReadonlyMap<string, KeyEntry>;
  readonly byX5t: ReadonlyMap<string, KeyEntry>;
  readonly count: number;
}

/** The key identifiers a token header may carry. */
export interface KeyLookup {
  readonly kid?: string | undefined;
  readonly x5t?: string | undefined;
}

const jwksSchema = z.object({
  keys: z.array(z.unknown()).max(MAX_KEYS_PER_SET),
});

const jwkSchema = z.object({
  kty: z.string(),
  use: z.string().optional(),
  alg: z.string().optional(),
  key_ops: z.array(z.string()).optional(),
  kid: z.string().min(1).max(256).optional(),
  x5t: z.string().min(1).max(256).optional(),
  issuer: z.string().min(1).max(2048).optional(),
  n: z.string().min(1),
  e: z.string().min(1),
});

export type KeyNotice = { readonly kind: 'skipped'; readonly index: number; readonly why: string; readonly kid?: string | undefined } | { readonly kind: 'duplicate_kid'; readonly kid: string };

/** The reason a JWKS entry cannot verify RS256 tokens, or undefined when it can. */
function unusable(k: z.infer<typeof jwkSchema>): string | undefined {
  if (k.kty !== 'RSA') return `kty ${k.kty} is not RSA`;
  if (k.use !== undefined && k.use !== 'sig') return `use ${k.use} is not sig`;
  if (k.alg !== undefined && k.alg !== 'RS256') return `alg ${k.alg} is not RS256`;
  if (k.key_ops !== undefined && !k.key_ops.includes('verify')) return 'key_ops excludes verify';
  if (k.kid === undefined && k.x5t === undefined) return 'neither kid nor x5t';
  return undefined;
}

/**
 * Imports a JWKS. Keys that are not RSA signing keys usable with RS256 are skipped (and reported
 * through `notice`); a document with no usable key at all is a failure, so that the caller keeps
 * its last known good set.
 */
export async function importKeySet(body: unknown, jwksUri: string, notice: (n: KeyNotice) => void): Promise<LoadedKeys> {
  const parsed = jwksSchema.safeParse(body);
  if (!parsed.success) {
    throw new FetchFailure('invalid_document', `jwks ${jwksUri} is not a JWK set of at most ${MAX_KEYS_PER_SET} keys`);
  }
  const byKid = new Map<string, KeyEntry>();
  const byX5t = new Map<string, KeyEntry>();
  let count = 0;
  for (const [index, candidate] of parsed.data.keys.entries()) {
    const jwk = jwkSchema.safeParse(candidate);
    if (!jwk.success) {
      const kty = (candidate as { kty?: unknown } | null)?.kty;
      notice({ kind: 'skipped', index, why: kty === 'RSA' ? 'invalid RSA key' : `kty ${String(kty)} is not RSA` });
      continue;
    }
    const k = jwk.data;
    const why = unusable(k);
    if (why !== undefined) {
      notice({ kind: 'skipped', index, why, kid: k.kid });
      continue;
    }
    let key: CryptoKey;
    try {
      // Only the public components are imported: nothing else in the JWK can influence the key.
      key = (await importJWK({ kty: 'RSA', n: k.n, e: k.e }, 'RS256')) as CryptoKey;
    } catch {
      notice({ kind: 'skipped', index, why: 'import failed', kid: k.kid });
      continue;
    }
    const bits = (key.algorithm as { modulusLength?: number }).modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      notice({ kind: 'skipped', index, why: `modulus of ${bits} bits is below ${MIN_RSA_BITS}`, kid: k.kid });
      continue;
    }
    const entry: KeyEntry = { kid: k.kid, x5t: k.x5t, issuer: k.issuer, key };
    // A duplicate identifier is ambiguous; the first key keeps it (Entra never publishes one).
    if (k.kid !== undefined) {
      if (byKid.has(k.kid)) notice({ kind: 'duplicate_kid', kid: k.kid });
      else byKid.set(k.kid, entry);
    }
    if (k.x5t !== undefined && !byX5t.has(k.x5t)) byX5t.set(k.x5t, entry);
    count += 1;
  }
  if (count === 0) throw new FetchFailure('invalid_document', `jwks ${jwksUri} holds no usable RS256 key`);
  return { byKid, byX5t, count };
}

/**
 * `kid` is authoritative when present; `x5t` only identifies keys in tokens without a `kid` (old v1
 * tokens), which jose's own JWKS helper cannot match in a multi-key set.
 */
export function lookupKey(keys: LoadedKeys, want: KeyLookup): KeyEntry | undefined {
  if (want.kid !== undefined) return keys.byKid.get(want.kid);
  if (want.x5t !== undefined) return keys.byX5t.get(want.x5t);
  return undefined;
}
