/**
 * Signing keys per tenant and token version, discovered from Entra's OpenID metadata.
 *
 * One key set exists for each configured tenant × accepted token version. Each set holds the
 * exact issuer its metadata publishes and the RSA keys of its JWKS, imported once when the set is
 * loaded so that the request path never imports a key. Sets are refreshed in the background, on
 * demand when a token names a key the set does not hold (rate-limited), and they keep the last
 * known good keys when a fetch fails — until `ttlSeconds` pass without a successful refresh.
 *
 * This module and `verifier.ts` are the only places in `src/` that import jose.
 */
import { importJWK, type CryptoKey } from 'jose';
import { z } from 'zod';
import type { EntraConfig } from '../../config/schema.js';

export type TokenVersion = '1.0' | '2.0';

/** The key identifiers a token header may carry. */
export interface KeyLookup {
  readonly kid?: string | undefined;
  readonly x5t?: string | undefined;
}

export type KeyResolution =
  | {
      readonly ok: true;
      /** Imported RS256 verification key. */
      readonly key: CryptoKey;
      /** The identifier the key was found by (for audit details). */
      readonly keyId: string;
      /** Exact issuer the tenant's metadata publishes for this token version. */
      readonly expectedIssuer: string;
      /** The JWKS entry's own `issuer` property (a template that may contain `{tenantid}`). */
      readonly keyIssuer?: string;
    }
  | {
      readonly ok: false;
      /**
       * `token_key_unknown`: the set is loaded but holds no such key (a deny).
       * `keys_unavailable`: nothing usable is cached and Entra could not be reached (an error, so
       * Envoy's failure mode applies).
       */
      readonly reason: 'token_key_unknown' | 'keys_unavailable';
      readonly detail: string;
    };

export interface KeyStoreLogEvent {
  level: 'info' | 'warn' | 'error';
  msg: string;
  [k: string]: unknown;
}

export type FetchKind = 'discovery' | 'jwks';

export interface KeyStoreDeps {
  readonly config: EntraConfig;
  readonly fetch: typeof globalThis.fetch;
  /** Wall clock in milliseconds. */
  readonly now: () => number;
  /**
   * Runs `fn` after `ms`; returns a cancel function. Default: an unref'd `setTimeout`. `fn` returns
   * a promise (never rejecting) that settles when the scheduled refresh is done, so a fake
   * scheduler can await it.
   */
  readonly schedule?: (fn: () => Promise<void>, ms: number) => () => void;
  readonly log?: (event: KeyStoreLogEvent) => void;
  /** Called after each discovery or JWKS fetch, for metrics and tracing. */
  readonly onFetch?: (kind: FetchKind, result: 'ok' | 'error', ms: number) => void;
  /** Source of jitter for background timers, in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
}

export interface KeySetStats {
  readonly tenant: string;
  readonly version: TokenVersion;
  /** Usable keys currently held. */
  readonly keyCount: number;
  readonly expectedIssuer: string | undefined;
  /** Wall-clock ms of the last successful load, if any. */
  readonly lastSuccessAt: number | undefined;
  readonly consecutiveFailures: number;
  readonly fetches: Readonly<Record<FetchKind, Readonly<{ ok: number; error: number }>>>;
}

export interface KeyStore {
  /**
   * Loads every key set once (never throws: a set that fails keeps retrying in the background
   * with exponential backoff), then refreshes each set every `refreshIntervalSeconds`.
   */
  start(): Promise<void>;
  /** Cancels background timers and aborts in-flight fetches. Final. */
  stop(): void;
  /** True while every tenant × version holds a usable (not expired) key set. */
  isReady(): boolean;
  /** Called with the new value whenever readiness flips. Returns an unsubscribe function. */
  onReadyChange(cb: (ready: boolean) => void): () => void;
  resolveKey(tenant: string, version: TokenVersion, lookup: KeyLookup): Promise<KeyResolution>;
  /** The exact issuer of a tenant × version, once its metadata has been loaded. Synchronous. */
  expectedIssuer(tenant: string, version: TokenVersion): string | undefined;
  stats(): KeySetStats[];
}

/** Placeholder Entra uses in issuer templates (metadata `issuer`, JWKS key `issuer`). */
export const TENANT_ID_TEMPLATE = '{tenantid}';

/** Largest discovery or JWKS document accepted (Entra's are a few KiB). */
const MAX_DOCUMENT_CHARS = 1024 * 1024;
/** Most keys read from one JWKS (Entra publishes fewer than ten). */
const MAX_KEYS_PER_SET = 100;
/** RS256 with a shorter modulus is refused (jose enforces the same at verification time). */
const MIN_RSA_BITS = 2048;
const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 60_000;
/** ± fraction of a background delay randomised so that replicas do not refresh in lock-step. */
const JITTER = 0.1;

const metadataSchema = z.object({
  issuer: z.string().min(1).max(2048),
  jwks_uri: z.string().min(1).max(2048),
});

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

interface KeyEntry {
  readonly kid: string | undefined;
  readonly x5t: string | undefined;
  readonly issuer: string | undefined;
  readonly key: CryptoKey;
}

interface Metadata {
  readonly issuer: string;
  readonly jwksUri: string;
}

interface LoadedKeys {
  readonly byKid: ReadonlyMap<string, KeyEntry>;
  readonly byX5t: ReadonlyMap<string, KeyEntry>;
  readonly count: number;
}

/** Mutable state of one tenant × version, owned by one store instance. */
interface KeySet {
  readonly tenant: string;
  readonly version: TokenVersion;
  readonly label: string;
  meta: Metadata | undefined;
  keys: LoadedKeys | undefined;
  lastSuccessAt: number | undefined;
  consecutiveFailures: number;
  inflight: Promise<boolean> | undefined;
  /** When the last refresh triggered by an unknown key started. */
  lastMissRefreshAt: number | undefined;
  cancelTimer: (() => void) | undefined;
  readonly fetches: Record<FetchKind, { ok: number; error: number }>;
}

type RefreshCause = 'initial' | 'scheduled' | 'retry' | 'unknown_key';

class FetchFailure extends Error {}

const defaultSchedule = (fn: () => Promise<void>, ms: number): (() => void) => {
  const t = setTimeout(() => void fn(), ms);
  t.unref();
  return () => clearTimeout(t);
};

function setKey(tenant: string, version: TokenVersion): string {
  return `${tenant}|${version}`;
}

export function createKeyStore(deps: KeyStoreDeps): KeyStore {
  const { config, now } = deps;
  const schedule = deps.schedule ?? defaultSchedule;
  const log = deps.log ?? (() => {});
  const random = deps.random ?? Math.random;
  const ttlMs = config.keys.ttlSeconds * 1000;
  const refreshMs = config.keys.refreshIntervalSeconds * 1000;
  const cooldownMs = config.keys.unknownKidCooldownSeconds * 1000;
  const retryMaxMs = Math.min(RETRY_MAX_MS, refreshMs);
  const authorityProtocol = new URL(config.authority).protocol;
  const stopController = new AbortController();

  const sets = new Map<string, KeySet>();
  for (const tenant of config.tenants) {
    for (const version of config.tokenVersions) {
      const id = setKey(tenant, version);
      if (sets.has(id)) continue;
      sets.set(id, {
        tenant,
        version,
        label: `tenant ${tenant} v${version}`,
        meta: undefined,
        keys: undefined,
        lastSuccessAt: undefined,
        consecutiveFailures: 0,
        inflight: undefined,
        lastMissRefreshAt: undefined,
        cancelTimer: undefined,
        fetches: { discovery: { ok: 0, error: 0 }, jwks: { ok: 0, error: 0 } },
      });
    }
  }

  let started = false;
  let stopped = false;
  let ready = false;
  const readyListeners = new Set<(ready: boolean) => void>();

  function metadataUrl(set: KeySet): string {
    return set.version === '2.0'
      ? `${config.authority}/${set.tenant}/v2.0/.well-known/openid-configuration`
      : `${config.authority}/${set.tenant}/.well-known/openid-configuration`;
  }

  /**
   * Fetches one document and interprets it. Anything short of a fully usable result — network
   * error, timeout, non-2xx, oversized or non-JSON body, a shape `interpret` rejects — counts as
   * one failed fetch.
   */
  async function fetchDocument<T>(
    set: KeySet,
    kind: FetchKind,
    url: string,
    interpret: (body: unknown) => T | Promise<T>,
  ): Promise<T> {
    const startedAt = now();
    let result: 'ok' | 'error' = 'error';
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(config.keys.fetchTimeoutMs), stopController.signal]);
      const res = await deps.fetch(url, { signal, headers: { accept: 'application/json' } });
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        throw new FetchFailure(`${kind} ${url} answered HTTP ${res.status}`);
      }
      const declared = Number(res.headers.get('content-length') ?? '0');
      if (declared > MAX_DOCUMENT_CHARS) {
        await res.body?.cancel().catch(() => {});
        throw new FetchFailure(`${kind} ${url} is too large (${declared} bytes)`);
      }
      const text = await res.text();
      if (text.length > MAX_DOCUMENT_CHARS) throw new FetchFailure(`${kind} ${url} is too large`);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new FetchFailure(`${kind} ${url} is not JSON`);
      }
      const value = await interpret(body);
      result = 'ok';
      return value;
    } catch (err) {
      if (err instanceof FetchFailure) throw err;
      const name = err instanceof Error ? err.name : 'Error';
      const message = err instanceof Error ? err.message : String(err);
      throw new FetchFailure(`${kind} ${url} failed: ${name}: ${message}`);
    } finally {
      set.fetches[kind][result] += 1;
      deps.onFetch?.(kind, result, now() - startedAt);
    }
  }

  /** A URL from a metadata document must be http(s), and plain http only if the authority is. */
  function checkedUrl(raw: string, what: string): string {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new FetchFailure(`${what} is not a URL`);
    }
    const allowed = authorityProtocol === 'http:' ? ['http:', 'https:'] : ['https:'];
    if (!allowed.includes(url.protocol)) throw new FetchFailure(`${what} must use ${allowed.join(' or ')}`);
    return url.href;
  }

  function loadMetadata(set: KeySet): Promise<Metadata> {
    const url = metadataUrl(set);
    return fetchDocument(set, 'discovery', url, (body) => {
      const parsed = metadataSchema.safeParse(body);
      if (!parsed.success) throw new FetchFailure(`discovery ${url} lacks a valid issuer/jwks_uri`);
      // Multi-tenant metadata publishes `{tenantid}`, tenant metadata the GUID itself. Either way
      // the result is the one exact issuer string accepted for this tenant and version.
      const issuer = parsed.data.issuer.split(TENANT_ID_TEMPLATE).join(set.tenant);
      // The issuer must name the tenant: metadata that does not (a misconfigured authority, a
      // `common`-style document) would otherwise let one issuer stand for every tenant.
      if (!issuer.toLowerCase().includes(set.tenant)) {
        throw new FetchFailure(`discovery ${url} issuer does not name the tenant`);
      }
      return { issuer, jwksUri: checkedUrl(parsed.data.jwks_uri, `discovery ${url} jwks_uri`) };
    });
  }

  /**
   * Fetches and imports a JWKS. Keys that are not RSA signing keys usable with RS256 are skipped
   * (and logged); a document with no usable key at all counts as a failed fetch so that the last
   * known good set is kept.
   */
  function loadKeys(set: KeySet, jwksUri: string): Promise<LoadedKeys> {
    return fetchDocument(set, 'jwks', jwksUri, (body) => importKeySet(set, jwksUri, body));
  }

  async function importKeySet(set: KeySet, jwksUri: string, body: unknown): Promise<LoadedKeys> {
    const parsed = jwksSchema.safeParse(body);
    if (!parsed.success) {
      throw new FetchFailure(`jwks ${jwksUri} is not a JWK set of at most ${MAX_KEYS_PER_SET} keys`);
    }
    const byKid = new Map<string, KeyEntry>();
    const byX5t = new Map<string, KeyEntry>();
    let count = 0;
    const skip = (index: number, why: string, kid?: string): void =>
      log({ level: 'info', msg: 'jwks key skipped', set: set.label, index, kid, why });

    for (const [index, candidate] of parsed.data.keys.entries()) {
      const jwk = jwkSchema.safeParse(candidate);
      if (!jwk.success) {
        const kty = (candidate as { kty?: unknown } | null)?.kty;
        skip(index, kty === 'RSA' ? 'invalid RSA key' : `kty ${String(kty)} is not RSA`);
        continue;
      }
      const k = jwk.data;
      if (k.kty !== 'RSA') {
        skip(index, `kty ${k.kty} is not RSA`, k.kid);
        continue;
      }
      if (k.use !== undefined && k.use !== 'sig') {
        skip(index, `use ${k.use} is not sig`, k.kid);
        continue;
      }
      if (k.alg !== undefined && k.alg !== 'RS256') {
        skip(index, `alg ${k.alg} is not RS256`, k.kid);
        continue;
      }
      if (k.key_ops !== undefined && !k.key_ops.includes('verify')) {
        skip(index, 'key_ops excludes verify', k.kid);
        continue;
      }
      if (k.kid === undefined && k.x5t === undefined) {
        skip(index, 'neither kid nor x5t', k.kid);
        continue;
      }
      let key: CryptoKey;
      try {
        // Only the public components are imported: nothing else in the JWK can influence the key.
        key = (await importJWK({ kty: 'RSA', n: k.n, e: k.e }, 'RS256')) as CryptoKey;
      } catch {
        skip(index, 'import failed', k.kid);
        continue;
      }
      const bits = (key.algorithm as { modulusLength?: number }).modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) {
        skip(index, `modulus of ${bits} bits is below ${MIN_RSA_BITS}`, k.kid);
        continue;
      }
      const entry: KeyEntry = { kid: k.kid, x5t: k.x5t, issuer: k.issuer, key };
      // A duplicate identifier is ambiguous; the first key keeps it (Entra never publishes one).
      if (k.kid !== undefined) {
        if (byKid.has(k.kid)) log({ level: 'warn', msg: 'duplicate kid in jwks', set: set.label, kid: k.kid });
        else byKid.set(k.kid, entry);
      }
      if (k.x5t !== undefined && !byX5t.has(k.x5t)) byX5t.set(k.x5t, entry);
      count += 1;
    }
    if (count === 0) throw new FetchFailure(`jwks ${jwksUri} holds no usable RS256 key`);
    return { byKid, byX5t, count };
  }

  async function doRefresh(set: KeySet, cause: RefreshCause): Promise<boolean> {
    try {
      // An unknown key needs only the JWKS; the metadata is re-read on every other refresh.
      const meta = cause === 'unknown_key' && set.meta ? set.meta : await loadMetadata(set);
      const keys = await loadKeys(set, meta.jwksUri);
      if (set.meta && set.meta.issuer !== meta.issuer) {
        log({ level: 'warn', msg: 'issuer changed', set: set.label, from: set.meta.issuer, to: meta.issuer });
      }
      set.meta = meta;
      set.keys = keys;
      set.lastSuccessAt = now();
      set.consecutiveFailures = 0;
      log({ level: 'info', msg: 'key set loaded', set: set.label, cause, keys: keys.count });
      return true;
    } catch (err) {
      set.consecutiveFailures += 1;
      const detail = err instanceof Error ? err.message : String(err);
      log({
        level: set.keys ? 'warn' : 'error',
        msg: set.keys ? 'key set refresh failed; keeping last known good keys' : 'key set load failed',
        set: set.label,
        cause,
        failures: set.consecutiveFailures,
        detail,
      });
      return false;
    } finally {
      updateReadiness();
    }
  }

  /** One refresh per set at a time: every caller during a fetch shares its promise. */
  function refresh(set: KeySet, cause: RefreshCause): Promise<boolean> {
    if (set.inflight) return set.inflight;
    const p = doRefresh(set, cause).finally(() => {
      set.inflight = undefined;
    });
    set.inflight = p;
    return p;
  }

  /**
   * Keys not confirmed by a successful fetch within `ttlSeconds` are dropped: a key Entra has
   * since revoked must not stay trusted forever just because Entra is unreachable.
   */
  function expireIfStale(set: KeySet): boolean {
    if (set.keys && set.lastSuccessAt !== undefined && now() - set.lastSuccessAt > ttlMs) {
      log({ level: 'error', msg: 'key set expired without a successful refresh', set: set.label });
      set.keys = undefined;
      return true;
    }
    return false;
  }

  function updateReadiness(): void {
    let all = true;
    for (const set of sets.values()) {
      expireIfStale(set);
      if (!set.keys) all = false;
    }
    if (all !== ready) {
      ready = all;
      log({ level: ready ? 'info' : 'warn', msg: ready ? 'all key sets ready' : 'key sets not ready' });
      for (const cb of readyListeners) {
        try {
          cb(ready);
        } catch (err) {
          log({ level: 'error', msg: 'ready listener threw', detail: String(err) });
        }
      }
    }
  }

  function jittered(ms: number): number {
    return Math.max(0, Math.round(ms * (1 + (random() * 2 - 1) * JITTER)));
  }

  function scheduleNext(set: KeySet, ok: boolean): void {
    if (stopped) return;
    set.cancelTimer?.();
    const delay = ok
      ? refreshMs
      : Math.min(retryMaxMs, RETRY_BASE_MS * 2 ** Math.min(20, Math.max(0, set.consecutiveFailures - 1)));
    set.cancelTimer = schedule(async () => {
      set.cancelTimer = undefined;
      if (stopped) return;
      try {
        scheduleNext(set, await refresh(set, ok ? 'scheduled' : 'retry'));
      } catch (err) {
        log({ level: 'error', msg: 'background refresh could not be rescheduled', set: set.label, detail: String(err) });
      }
    }, jittered(delay));
  }

  function lookup(keys: LoadedKeys, want: KeyLookup): KeyEntry | undefined {
    // `kid` is authoritative when present; `x5t` only identifies keys in tokens without a `kid`
    // (old v1 tokens), which jose's own JWKS helper cannot match in a multi-key set.
    if (want.kid !== undefined) return keys.byKid.get(want.kid);
    if (want.x5t !== undefined) return keys.byX5t.get(want.x5t);
    return undefined;
  }

  function found(entry: KeyEntry, meta: Metadata): KeyResolution {
    return {
      ok: true,
      key: entry.key,
      keyId: entry.kid ?? `x5t:${entry.x5t ?? ''}`,
      expectedIssuer: meta.issuer,
      ...(entry.issuer !== undefined ? { keyIssuer: entry.issuer } : {}),
    };
  }

  function describe(want: KeyLookup): string {
    if (want.kid !== undefined) return `kid ${JSON.stringify(want.kid.slice(0, 128))}`;
    return `x5t ${JSON.stringify((want.x5t ?? '').slice(0, 128))}`;
  }

  async function resolveKey(tenant: string, version: TokenVersion, want: KeyLookup): Promise<KeyResolution> {
    const set = sets.get(setKey(tenant, version));
    if (!set) {
      // Not a configured tenant × version: a deny, never "unavailable" (which may fail open).
      return { ok: false, reason: 'token_key_unknown', detail: `no key set for tenant ${tenant} v${version}` };
    }
    if (want.kid === undefined && want.x5t === undefined) {
      return { ok: false, reason: 'token_key_unknown', detail: 'token header names no key (neither kid nor x5t)' };
    }
    if (expireIfStale(set)) updateReadiness();
    if (set.keys && set.meta) {
      const entry = lookup(set.keys, want);
      if (entry) return found(entry, set.meta);
    }

    // A miss. Join a fetch already in flight; otherwise start one unless this set was refreshed for
    // a miss within the cooldown — so a flood of made-up kids costs at most one fetch per period.
    if (set.inflight) {
      await set.inflight;
    } else if (set.lastMissRefreshAt === undefined || now() - set.lastMissRefreshAt >= cooldownMs) {
      set.lastMissRefreshAt = now();
      await refresh(set, 'unknown_key');
    }
    if (expireIfStale(set)) updateReadiness();
    if (set.keys && set.meta) {
      const entry = lookup(set.keys, want);
      if (entry) return found(entry, set.meta);
      // Keys are held but not this one: the token is refused even if Entra is down, since an
      // "unavailable" answer here would let anyone fail a fail-open deployment open at will.
      return { ok: false, reason: 'token_key_unknown', detail: `${describe(want)} not in ${set.label} key set` };
    }
    return {
      ok: false,
      reason: 'keys_unavailable',
      detail: `no usable keys for ${set.label} and Entra could not be reached (${set.consecutiveFailures} failed attempts)`,
    };
  }

  return {
    async start() {
      if (started || stopped) return;
      started = true;
      await Promise.all(
        [...sets.values()].map((set) =>
          refresh(set, 'initial').then((ok) => {
            scheduleNext(set, ok);
          }),
        ),
      );
    },

    stop() {
      stopped = true;
      for (const set of sets.values()) {
        set.cancelTimer?.();
        set.cancelTimer = undefined;
      }
      stopController.abort();
    },

    isReady() {
      updateReadiness();
      return ready;
    },

    onReadyChange(cb) {
      readyListeners.add(cb);
      return () => {
        readyListeners.delete(cb);
      };
    },

    resolveKey,

    expectedIssuer(tenant, version) {
      return sets.get(setKey(tenant, version))?.meta?.issuer;
    },

    stats() {
      return [...sets.values()].map((set) => ({
        tenant: set.tenant,
        version: set.version,
        keyCount: set.keys?.count ?? 0,
        expectedIssuer: set.meta?.issuer,
        lastSuccessAt: set.lastSuccessAt,
        consecutiveFailures: set.consecutiveFailures,
        fetches: {
          discovery: { ...set.fetches.discovery },
          jwks: { ...set.fetches.jwks },
        },
      }));
    },
  };
}
