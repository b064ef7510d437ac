/**
 * Signing keys per tenant and token version, discovered from Entra's OpenID metadata: the refresh
 * state machine. Fetching and parsing the documents is `documents.ts`; URLs come from `urls.ts`.
 *
 * One key set exists for each configured tenant × accepted token version (for Azure AD B2C: for
 * each configured user flow, whose metadata names its own keys and issuer). Each set holds the
 * exact issuer its metadata publishes and the RSA keys of its JWKS, imported once when the set is
 * loaded so that the request path never imports a key. Sets are refreshed in the background, on
 * demand when a token names a key the set does not hold (rate-limited by a cooldown per set and a
 * JWKS budget per store), and they keep the last known good keys when a fetch fails — until
 * `ttlSeconds` pass without a successful refresh.
 *
 * Every wait is bounded: each fetch by `fetchTimeoutMs` (a timer held here), a check waiting on a
 * refresh by `checkDeadlineMs`, and a refresh that outlives twice its bound (a fetch that ignores
 * its abort) is abandoned by a watchdog, counted, and reported until a later refresh completes.
 */
import type { CryptoKey } from 'jose';
import type { EntraConfig } from '../../config/schema.js';
import {
  fetchJson,
  FetchFailure,
  importKeySet,
  lookupKey,
  parseMetadata,
  type FetchFailureKind,
  type KeyEntry,
  type KeyLookup,
  type LoadedKeys,
  type Metadata,
} from './documents.js';
import { signingKeyOwners } from './app-keys.js';
import { createFetchBudget } from './fetch-budget.js';
import { createEntraHttpClient } from './http.js';
import { b2cUrl, entraUrl, TENANT_ID_TEMPLATE, type TokenVersion } from './urls.js';

export { TENANT_ID_TEMPLATE, type TokenVersion, type KeyLookup };

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

/** Default of `server.checkDeadlineMs`: well under the 0.5 s ext_authz timeout Envoy configs use. */
export const DEFAULT_CHECK_DEADLINE_MS = 300;

export interface KeyStoreDeps {
  readonly config: EntraConfig;
  /** Default: undici's fetch with connect, header and body timeouts of `keys.fetchTimeoutMs`. */
  readonly fetch?: typeof globalThis.fetch;
  /** Wraps whichever fetch is used, the given one or the default (telemetry traces each request). */
  readonly wrapFetch?: (fetch: typeof globalThis.fetch) => typeof globalThis.fetch;
  /** Wall clock in milliseconds. */
  readonly now: () => number;
  /**
   * Runs `fn` after `ms`; returns a cancel function. Default: an unref'd `setTimeout`. `fn` returns
   * a promise (never rejecting) that settles when the scheduled work is done, so a fake scheduler
   * can await it. Used for background refreshes, the watchdog and check deadlines.
   */
  readonly schedule?: (fn: () => Promise<void>, ms: number) => () => void;
  readonly log?: (event: KeyStoreLogEvent) => void;
  /** Called after each discovery or JWKS fetch, for metrics and tracing. */
  readonly onFetch?: (kind: FetchKind, result: 'ok' | 'error' | 'timeout', ms: number) => void;
  /** Source of jitter for background timers, in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /**
   * Longest a check waits for a refresh it needs (`server.checkDeadlineMs`); past it the check is
   * answered without the refresh, which goes on in the background. Default 300 ms.
   */
  readonly checkDeadlineMs?: number;
}

export interface KeySetStats {
  readonly tenant: string;
  readonly version: TokenVersion;
  /** The B2C user flow of the set, if any. */
  readonly userFlow: string | undefined;
  /** The app whose own keys the set holds, if any. */
  readonly appId: string | undefined;
  /** Usable keys currently held. */
  readonly keyCount: number;
  readonly expectedIssuer: string | undefined;
  /** Wall-clock ms of the last successful load, if any. */
  readonly lastSuccessAt: number | undefined;
  readonly consecutiveFailures: number;
  /** Why the last refresh failed (cleared by a success). */
  readonly lastError: { readonly kind: FetchFailureKind; readonly message: string } | undefined;
  readonly fetches: Readonly<Record<FetchKind, Readonly<{ ok: number; error: number }>>>;
  /** Refreshes the watchdog gave up on. */
  readonly abandonedRefreshes: number;
  /** True from a refresh being abandoned until a later refresh of the set completes. */
  readonly refreshStuck: boolean;
  /** Refreshes on an unknown key refused because the store's JWKS budget was spent. */
  readonly refreshesOverBudget: number;
}

/** Narrows a tenant × version to one of its key sets. */
export interface KeySetScope {
  /** The B2C user flow (lower-case); absent outside B2C. */
  readonly userFlow?: string | undefined;
  /** The app whose own keys (claims mapping) are meant; absent for the common keys. */
  readonly appId?: string | undefined;
}

export interface KeyStoreReadiness {
  readonly ready: boolean;
  /** One line per set that keeps the store from being ready; free of secrets (served on /readyz). */
  readonly problems: readonly string[];
}

export interface KeyStore {
  /**
   * Loads every key set once (never throws: a set that fails keeps retrying in the background
   * with exponential backoff), then refreshes each set every `refreshIntervalSeconds`.
   */
  start(): Promise<void>;
  /** Cancels background timers and aborts in-flight fetches. Final. */
  stop(): void;
  /** True while every tenant × version holds a usable (not expired) key set and none is stuck. */
  isReady(): boolean;
  /** `isReady` with the reason of each set that is not. */
  readiness(): KeyStoreReadiness;
  /** Called with the new value whenever readiness flips. Returns an unsubscribe function. */
  onReadyChange(cb: (ready: boolean) => void): () => void;
  resolveKey(tenant: string, version: TokenVersion, lookup: KeyLookup, scope?: KeySetScope): Promise<KeyResolution>;
  /** The exact issuer of a tenant × version (within a scope), once its metadata has been loaded. Synchronous. */
  expectedIssuer(tenant: string, version: TokenVersion, scope?: KeySetScope): string | undefined;
  stats(): KeySetStats[];
}

const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 60_000;
/** ± fraction of a background delay randomised so that replicas do not refresh in lock-step. */
const JITTER = 0.1;
/** A full refresh is two fetches in a row (metadata, then JWKS). */
const FETCHES_PER_REFRESH = 2;
/** The watchdog abandons a refresh in flight for longer than this many times its bound. */
const WATCHDOG_FACTOR = 2;

/** Mutable state of one tenant × version, owned by one store instance. */
interface KeySet {
  readonly tenant: string;
  readonly version: TokenVersion;
  /** B2C user flow, lower-case (the set's identity), and as configured (its URL). */
  readonly userFlow: string | undefined;
  readonly flowPath: string | undefined;
  /** Keys of this app's own (fetched with `?appid=`), or the common keys when undefined. */
  readonly appId: string | undefined;
  readonly label: string;
  meta: Metadata | undefined;
  keys: LoadedKeys | undefined;
  lastSuccessAt: number | undefined;
  consecutiveFailures: number;
  lastError: { kind: FetchFailureKind; message: string } | undefined;
  inflight: Promise<boolean> | undefined;
  /** Increases with every refresh started; an abandoned refresh that settles late never overwrites a newer one. */
  generation: number;
  appliedGeneration: number;
  /** When the last refresh triggered by an unknown key started. */
  lastMissRefreshAt: number | undefined;
  cancelTimer: (() => void) | undefined;
  cancelWatchdog: (() => void) | undefined;
  abandonedRefreshes: number;
  refreshStuck: boolean;
  refreshesOverBudget: number;
  readonly fetches: Record<FetchKind, { ok: number; error: number }>;
}

type RefreshCause = 'initial' | 'scheduled' | 'retry' | 'unknown_key';

const defaultSchedule = (fn: () => Promise<void>, ms: number): (() => void) => {
  const t = setTimeout(() => void fn(), ms);
  t.unref();
  return () => clearTimeout(t);
};

function setKey(tenant: string, version: TokenVersion, scope: KeySetScope | undefined): string {
  return `${tenant}|${version}|${scope?.userFlow ?? ''}|${scope?.appId ?? ''}`;
}

interface SetPlan {
  tenant: string;
  version: TokenVersion;
  userFlow: string | undefined;
  flowPath: string | undefined;
  appId: string | undefined;
  label: string;
}

/** The sets a configuration calls for: tenant × version, or the B2C tenant's user flows (v2.0). */
function setsOf(config: EntraConfig): SetPlan[] {
  const owners = signingKeyOwners(config);
  const appLabel = (appId: string | undefined): string => (appId === undefined ? '' : ` app ${appId}`);
  if (config.b2c !== undefined) {
    const tenant = config.tenants[0] ?? '';
    // Names compare case-insensitively; URLs keep the configured spelling, which B2C echoes in a `tfp` issuer.
    return config.b2c.userFlows.flatMap((flow) =>
      owners.map((appId) => ({ tenant, version: '2.0' as const, userFlow: flow.toLowerCase(), flowPath: flow, appId, label: `B2C tenant ${tenant} user flow ${flow}${appLabel(appId)}` })),
    );
  }
  return config.tenants.flatMap((tenant) =>
    config.tokenVersions.flatMap((version) =>
      owners.map((appId) => ({ tenant, version, userFlow: undefined, flowPath: undefined, appId, label: `tenant ${tenant} v${version}${appLabel(appId)}` })),
    ),
  );
}

function describe(want: KeyLookup): string {
  if (want.kid !== undefined) return `kid ${JSON.stringify(want.kid.slice(0, 128))}`;
  return `x5t ${JSON.stringify((want.x5t ?? '').slice(0, 128))}`;
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

export function createKeyStore(deps: KeyStoreDeps): KeyStore {
  const { config, now } = deps;
  const schedule = deps.schedule ?? defaultSchedule;
  const log = deps.log ?? (() => {});
  const random = deps.random ?? Math.random;
  const ttlMs = config.keys.ttlSeconds * 1000;
  const refreshMs = config.keys.refreshIntervalSeconds * 1000;
  const cooldownMs = config.keys.unknownKidCooldownSeconds * 1000;
  const fetchTimeoutMs = config.keys.fetchTimeoutMs;
  const watchdogMs = WATCHDOG_FACTOR * FETCHES_PER_REFRESH * fetchTimeoutMs;
  const checkDeadlineMs = deps.checkDeadlineMs ?? DEFAULT_CHECK_DEADLINE_MS;
  const retryMaxMs = Math.min(RETRY_MAX_MS, refreshMs);
  const authorityProtocol = new URL(config.authority).protocol;
  const jwksBudget = createFetchBudget(config.keys.maxJwksFetchesPerMinute, now);
  const ownClient = deps.fetch ? undefined : createEntraHttpClient(fetchTimeoutMs);
  const baseFetch = deps.fetch ?? (ownClient as NonNullable<typeof ownClient>).fetch;
  const fetch = deps.wrapFetch ? deps.wrapFetch(baseFetch) : baseFetch;
  const stopController = new AbortController();

  const sets = new Map<string, KeySet>();
  for (const { tenant, version, userFlow, flowPath, appId, label } of setsOf(config)) {
    const id = setKey(tenant, version, { userFlow, appId });
    if (sets.has(id)) continue;
    sets.set(id, {
      tenant,
      version,
      userFlow,
      flowPath,
      appId,
      label,
      meta: undefined,
      keys: undefined,
      lastSuccessAt: undefined,
      consecutiveFailures: 0,
      lastError: undefined,
      inflight: undefined,
      generation: 0,
      appliedGeneration: 0,
      lastMissRefreshAt: undefined,
      cancelTimer: undefined,
      cancelWatchdog: undefined,
      abandonedRefreshes: 0,
      refreshStuck: false,
      refreshesOverBudget: 0,
      fetches: { discovery: { ok: 0, error: 0 }, jwks: { ok: 0, error: 0 } },
    });
  }

  let started = false;
  let stopped = false;
  let ready = false;
  const readyListeners = new Set<(ready: boolean) => void>();

  /** One fetch, counted and reported whatever its outcome. */
  async function fetchDocument<T>(set: KeySet, kind: FetchKind, url: string, signal: AbortSignal, read: (body: unknown) => T | Promise<T>): Promise<T> {
    const startedAt = now();
    let result: 'ok' | 'error' | 'timeout' = 'error';
    try {
      const value = await read(await fetchJson(fetch, url, { timeoutMs: fetchTimeoutMs, stopSignal: signal }));
      result = 'ok';
      return value;
    } catch (err) {
      if (err instanceof FetchFailure && err.kind === 'timeout') result = 'timeout';
      throw err;
    } finally {
      set.fetches[kind][result === 'ok' ? 'ok' : 'error'] += 1;
      deps.onFetch?.(kind, result, now() - startedAt);
    }
  }

  function loadMetadata(set: KeySet, signal: AbortSignal): Promise<Metadata> {
    // Apps with claims mapping have keys of their own: Entra serves them, and a `jwks_uri` that
    // keeps the parameter, only when the metadata is asked for with `?appid=`.
    const url =
      (set.flowPath === undefined
        ? entraUrl(config.authority, set.tenant, 'metadata', set.version)
        : b2cUrl(config.authority, config.b2c?.tenant ?? set.tenant, set.flowPath, 'metadata')) + (set.appId === undefined ? '' : `?appid=${encodeURIComponent(set.appId)}`);
    return fetchDocument(set, 'discovery', url, signal, (body) => parseMetadata(body, set.tenant, url, authorityProtocol));
  }

  function loadKeys(set: KeySet, jwksUri: string, signal: AbortSignal): Promise<LoadedKeys> {
    return fetchDocument(set, 'jwks', jwksUri, signal, (body) =>
      importKeySet(body, jwksUri, (n) =>
        n.kind === 'skipped'
          ? log({ level: 'info', msg: 'jwks key skipped', set: set.label, index: n.index, kid: n.kid, why: n.why })
          : log({ level: 'warn', msg: 'duplicate kid in jwks', set: set.label, kid: n.kid }),
      ),
    );
  }

  async function doRefresh(set: KeySet, cause: RefreshCause, generation: number, signal: AbortSignal): Promise<boolean> {
    try {
      // An unknown key needs only the JWKS; the metadata is re-read on every other refresh.
      const meta = cause === 'unknown_key' && set.meta ? set.meta : await loadMetadata(set, signal);
      if (cause !== 'unknown_key') jwksBudget.record();
      const keys = await loadKeys(set, meta.jwksUri, signal);
      if (generation < set.appliedGeneration) return true; // a newer refresh already landed
      if (set.meta && set.meta.issuer !== meta.issuer) {
        log({ level: 'warn', msg: 'issuer changed', set: set.label, from: set.meta.issuer, to: meta.issuer });
      }
      set.appliedGeneration = generation;
      set.meta = meta;
      set.keys = keys;
      set.lastSuccessAt = now();
      set.consecutiveFailures = 0;
      set.lastError = undefined;
      log({ level: 'info', msg: 'key set loaded', set: set.label, cause, keys: keys.count });
      return true;
    } catch (err) {
      const failure = err instanceof FetchFailure ? err : new FetchFailure('network', err instanceof Error ? err.message : String(err));
      if (generation >= set.appliedGeneration) {
        set.consecutiveFailures += 1;
        set.lastError = { kind: failure.kind, message: failure.message };
      }
      log({
        level: set.keys ? 'warn' : 'error',
        msg: set.keys ? 'key set refresh failed; keeping last known good keys' : 'key set load failed',
        set: set.label,
        cause,
        failures: set.consecutiveFailures,
        reason: failure.kind,
        detail: failure.message,
      });
      return false;
    } finally {
      set.refreshStuck = false;
      updateReadiness();
    }
  }

  /**
   * One refresh per set at a time: every caller during a fetch shares its promise. A watchdog
   * abandons a refresh that outlives its bound, so that the set can be refreshed again.
   */
  function refresh(set: KeySet, cause: RefreshCause): Promise<boolean> {
    if (set.inflight) return set.inflight;
    const generation = ++set.generation;
    const controller = new AbortController();
    const onStop = (): void => controller.abort();
    stopController.signal.addEventListener('abort', onStop, { once: true });
    let settle: (ok: boolean) => void = () => {};
    // Settles when the refresh completes, or with `false` when the watchdog abandons it.
    const outcome = new Promise<boolean>((resolve) => (settle = resolve));
    const release = (): void => {
      if (set.inflight !== outcome) return;
      set.inflight = undefined;
      set.cancelWatchdog?.();
      set.cancelWatchdog = undefined;
    };
    void doRefresh(set, cause, generation, controller.signal).then((ok) => {
      stopController.signal.removeEventListener('abort', onStop);
      release();
      settle(ok);
    });
    set.inflight = outcome;
    set.cancelWatchdog = schedule(async () => {
      if (set.inflight !== outcome) return;
      release();
      set.abandonedRefreshes += 1;
      set.refreshStuck = true;
      controller.abort();
      log({ level: 'error', msg: 'key set refresh stuck; abandoned', set: set.label, cause, afterMs: watchdogMs, abandoned: set.abandonedRefreshes });
      updateReadiness();
      settle(false);
    }, watchdogMs);
    return outcome;
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

  function problemOf(set: KeySet): string | undefined {
    if (set.refreshStuck) return `${set.label}: refresh stuck (abandoned after ${watchdogMs} ms)`;
    if (set.keys) return undefined;
    const why = set.lastError ? `${set.lastError.kind}: ${set.lastError.message}` : 'not loaded yet';
    return `${set.label}: no keys (${why})`;
  }

  function updateReadiness(): void {
    let all = true;
    for (const set of sets.values()) {
      expireIfStale(set);
      if (problemOf(set) !== undefined) all = false;
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

  /** Waits for `pending` at most `checkDeadlineMs`; the refresh itself goes on either way. */
  function untilDeadline(pending: Promise<boolean>): Promise<void> {
    return new Promise((resolve) => {
      const cancel = schedule(async () => resolve(), checkDeadlineMs);
      void pending.then(() => {
        cancel();
        resolve();
      });
    });
  }

  /** Starts a refresh for a missing key unless the cooldown or the JWKS budget forbids it. */
  function refreshForMiss(set: KeySet): Promise<boolean> | undefined {
    if (set.inflight) return set.inflight;
    if (set.lastMissRefreshAt !== undefined && now() - set.lastMissRefreshAt < cooldownMs) return undefined;
    if (!jwksBudget.tryTake()) {
      set.refreshesOverBudget += 1;
      log({ level: 'warn', msg: 'jwks fetch budget spent; unknown key not refreshed', set: set.label, perMinute: config.keys.maxJwksFetchesPerMinute });
      return undefined;
    }
    set.lastMissRefreshAt = now();
    return refresh(set, 'unknown_key');
  }

  async function resolveKey(tenant: string, version: TokenVersion, want: KeyLookup, scope?: KeySetScope): Promise<KeyResolution> {
    const set = sets.get(setKey(tenant, version, scope));
    if (!set) {
      // Not a configured tenant × version: a deny, never "unavailable" (which may fail open).
      const within = `${scope?.userFlow === undefined ? '' : ` user flow ${scope.userFlow}`}${scope?.appId === undefined ? '' : ` app ${scope.appId}`}`;
      return { ok: false, reason: 'token_key_unknown', detail: `no key set for tenant ${tenant} v${version}${within}` };
    }
    if (want.kid === undefined && want.x5t === undefined) {
      return { ok: false, reason: 'token_key_unknown', detail: 'token header names no key (neither kid nor x5t)' };
    }
    if (expireIfStale(set)) updateReadiness();
    if (set.keys && set.meta) {
      const entry = lookupKey(set.keys, want);
      if (entry) return found(entry, set.meta);
    }

    // A miss. Join a fetch already in flight, or start one if the cooldown and budget allow — so a
    // flood of made-up kids costs at most one fetch per period — and wait for it until the deadline.
    const pending = refreshForMiss(set);
    if (pending) await untilDeadline(pending);
    if (expireIfStale(set)) updateReadiness();
    if (set.keys && set.meta) {
      const entry = lookupKey(set.keys, want);
      if (entry) return found(entry, set.meta);
      // Keys are held but not this one: the token is refused even if Entra is down, since an
      // "unavailable" answer here would let anyone fail a fail-open deployment open at will.
      return { ok: false, reason: 'token_key_unknown', detail: `${describe(want)} not in ${set.label} key set` };
    }
    const why = set.inflight ? 'a refresh is still in flight' : `${set.consecutiveFailures} failed attempts${set.lastError ? `, last: ${set.lastError.kind}` : ''}`;
    return { ok: false, reason: 'keys_unavailable', detail: `no usable keys for ${set.label} and Entra could not be reached (${why})` };
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
        set.cancelWatchdog?.();
        set.cancelWatchdog = undefined;
      }
      stopController.abort();
      void ownClient?.close();
    },

    isReady() {
      updateReadiness();
      return ready;
    },

    readiness() {
      updateReadiness();
      const problems = [...sets.values()].map(problemOf).filter((p): p is string => p !== undefined);
      return { ready, problems };
    },

    onReadyChange(cb) {
      readyListeners.add(cb);
      return () => {
        readyListeners.delete(cb);
      };
    },

    resolveKey,

    expectedIssuer(tenant, version, scope) {
      return sets.get(setKey(tenant, version, scope))?.meta?.issuer;
    },

    stats() {
      return [...sets.values()].map((set) => ({
        tenant: set.tenant,
        version: set.version,
        userFlow: set.userFlow,
        appId: set.appId,
        keyCount: set.keys?.count ?? 0,
        expectedIssuer: set.meta?.issuer,
        lastSuccessAt: set.lastSuccessAt,
        consecutiveFailures: set.consecutiveFailures,
        lastError: set.lastError ? { ...set.lastError } : undefined,
        fetches: {
          discovery: { ...set.fetches.discovery },
          jwks: { ...set.fetches.jwks },
        },
        abandonedRefreshes: set.abandonedRefreshes,
        refreshStuck: set.refreshStuck,
        refreshesOverBudget: set.refreshesOverBudget,
      }));
    },
  };
}
