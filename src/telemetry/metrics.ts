import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Decision } from '../core/decision.js';
import type { CheckMode } from '../core/request.js';
import { REASONS } from '../core/reasons.js';

/**
 * Prometheus metrics, one non-global `Registry` per instance (tests create as many as they like;
 * nothing is registered on prom-client's default registry). Served by `startAdminServer`.
 *
 * Every label value comes from a closed set — decision kinds, reason codes, rule names and tenant
 * GUIDs from the configuration, fixed result words — never from request input, so cardinality
 * stays bounded.
 */

/** Seconds. From 50 µs (a verified-token cache hit) to 2.5 s (a check stuck behind a key fetch). */
export const CHECK_DURATION_BUCKETS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/** Seconds. Discovery and JWKS requests to Entra: tens of milliseconds up to the fetch timeout. */
export const KEY_FETCH_DURATION_BUCKETS: readonly number[] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const METRIC = {
  decisions: 'entra_authz_decisions_total',
  grpcStatus: 'entra_authz_grpc_status_total',
  buildInfo: 'entra_authz_build_info',
  dryRunDenials: 'entra_authz_dry_run_denials_total',
  dryRunActive: 'entra_authz_dry_run_active',
  checkDuration: 'entra_authz_check_duration_seconds',
  cacheLookups: 'entra_authz_token_cache_lookups_total',
  keyFetches: 'entra_authz_key_fetches_total',
  keyFetchDuration: 'entra_authz_key_fetch_duration_seconds',
  graphLookups: 'entra_authz_graph_lookups_total',
  keysLoaded: 'entra_authz_keys_loaded',
  keyRefreshesAbandoned: 'entra_authz_key_refreshes_abandoned_total',
  configReloads: 'entra_authz_config_reloads_total',
  configLastReloadSuccess: 'entra_authz_config_last_reload_success_timestamp_seconds',
  auditDropped: 'entra_authz_audit_records_dropped_total',
  workerRestarts: 'entra_authz_worker_restarts_total',
} as const;

/** What was fetched: the OpenID discovery document or the JWKS. */
export type KeyFetchKind = 'discovery' | 'jwks';
/**
 * `timeout` is split from `failure` because it calls for a different fix (network, not Entra).
 * The key store's own words `ok` / `error` are accepted and recorded as `success` / `failure`.
 */
export type KeyFetchResult = 'success' | 'failure' | 'timeout' | 'ok' | 'error';

/** What `observeKeySets` reads (the key store's `stats()` entries fit). */
export interface KeySetCount {
  readonly tenant: string;
  readonly version: string;
  readonly keyCount: number;
  /** Azure AD B2C: the user flow of the set. */
  readonly userFlow?: string | undefined;
  /** The app whose own signing keys (claims mapping) the set holds. */
  readonly appId?: string | undefined;
  /** Refreshes the key store's watchdog gave up on (stuck past twice their bound). */
  readonly abandonedRefreshes?: number;
}
export type ConfigReloadResult = 'success' | 'failure';
/** How a group-membership lookup for an overage token was answered (see `GroupResolverDeps.onLookup`). */
export type GraphLookupResult = 'hit' | 'miss' | 'throttled' | 'failed';

/** A key set's labels: `user_flow` and `app_id` only on the sets that have one, so plain sets keep two labels. */
function keySetLabels(set: KeySetCount): Partial<Record<'tenant' | 'version' | 'user_flow' | 'app_id', string>> {
  return {
    tenant: set.tenant,
    version: set.version,
    ...(set.userFlow !== undefined ? { user_flow: set.userFlow } : {}),
    ...(set.appId !== undefined ? { app_id: set.appId } : {}),
  };
}

export interface MetricsOptions {
  /** Also export prom-client's process and Node.js runtime metrics (`process_*`, `nodejs_*`). Default true. */
  readonly processMetrics?: boolean;
  /** Clock for the last-successful-reload timestamp (milliseconds since the epoch). */
  readonly now?: () => number;
  /** The `version` label of `entra_authz_build_info`. Default `unknown`. */
  readonly version?: string;
}

export interface Metrics {
  readonly registry: Registry;
  /**
   * One finished check: its outcome, reason code, rule, the gRPC status Envoy received (gRPC mode
   * only) and how long it took (seconds). A dry-run allow also counts in
   * `entra_authz_dry_run_denials_total` under the reason it would have had. `mode` is the front
   * door (gRPC Check or HTTP authorization request); default `grpc`.
   */
  decision(decision: Decision, seconds: number, mode?: CheckMode): void;
  /** One verified-token cache lookup. */
  cache(hit: boolean): void;
  /** One group-membership lookup through Microsoft Graph, by how it was answered. */
  graphLookup(result: GraphLookupResult): void;
  /** One discovery or JWKS fetch and how long it took (seconds). */
  keyFetch(kind: KeyFetchKind, result: KeyFetchResult, seconds: number): void;
  /** The number of signing keys currently loaded for a tenant and token version ('1.0' / '2.0'). */
  keysLoaded(tenant: string, version: string, n: number): void;
  /**
   * Alternative to `keysLoaded`: reads the counts at every scrape, e.g.
   * `metrics.observeKeySets(() => keys.stats())`. Replaces any earlier source.
   */
  observeKeySets(source: () => readonly KeySetCount[]): void;
  /**
   * Where `entra_authz_dry_run_active` reads, at every scrape, whether the running configuration
   * lets would-be denials through (top-level or on any rule). Replaces any earlier source.
   */
  observeDryRun(source: () => boolean): void;
  /** One configuration reload attempt. */
  configReload(result: ConfigReloadResult): void;
  /** Audit records dropped because the sink was failing or its buffer was full. */
  auditDropped(n?: number): void;
  /** A worker process (`server.workers` > 1) died and was replaced. */
  workerRestarted(): void;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const now = options.now ?? Date.now;

  const decisions = new Counter({
    name: METRIC.decisions,
    help: 'Check decisions by outcome (allow, deny, unavailable), reason code, the rule that decided (empty when none matched) and mode (grpc, http).',
    labelNames: ['decision', 'reason', 'rule', 'mode'] as const,
    registers,
  });
  const grpcStatus = new Counter({
    name: METRIC.grpcStatus,
    help: 'gRPC-mode checks by the gRPC status Envoy received: CheckResponse.status of an answered check, or the RPC status when it failed (14).',
    labelNames: ['grpc_code'] as const,
    registers,
  });
  const dryRunDenials = new Counter({
    name: METRIC.dryRunDenials,
    help: 'Denials that dry-run turned into allows, by the reason code enforcement would have given and the rule.',
    labelNames: ['reason', 'rule'] as const,
    registers,
  });
  new Gauge({
    name: METRIC.buildInfo,
    help: 'Always 1; labels carry the entra-authz version and the Node.js version running it.',
    labelNames: ['version', 'node_version'] as const,
    // Worker processes aggregated into one /metrics (prom-client's AggregatorRegistry) still say 1.
    aggregator: 'first',
    registers,
  })
    .labels({ version: options.version ?? 'unknown', node_version: process.version })
    .set(1);
  const checkDuration = new Histogram({
    name: METRIC.checkDuration,
    help: 'Time from receiving a Check to having its decision, in seconds, by outcome and mode (grpc, http).',
    labelNames: ['decision', 'mode'] as const,
    buckets: [...CHECK_DURATION_BUCKETS],
    registers,
  });
  const cacheLookups = new Counter({
    name: METRIC.cacheLookups,
    help: 'Verified-token cache lookups by result (hit, miss).',
    labelNames: ['result'] as const,
    registers,
  });
  const keyFetches = new Counter({
    name: METRIC.keyFetches,
    help: 'Signing-key fetches from Entra by kind (discovery, jwks) and result (success, failure, timeout).',
    labelNames: ['kind', 'result'] as const,
    registers,
  });
  const graphLookups = new Counter({
    name: METRIC.graphLookups,
    help: 'Group-membership lookups through Microsoft Graph for overage tokens, by result (hit: cache, miss: Graph answered, throttled: 429, failed).',
    labelNames: ['result'] as const,
    registers,
  });
  const keyFetchDuration = new Histogram({
    name: METRIC.keyFetchDuration,
    help: 'Duration of signing-key fetches from Entra, in seconds, by kind.',
    labelNames: ['kind'] as const,
    buckets: [...KEY_FETCH_DURATION_BUCKETS],
    registers,
  });
  let keySetSource: (() => readonly KeySetCount[]) | undefined;
  /** At scrape time: one series per key set, from the key store; the last values stay if it throws. */
  const perKeySet = (metric: { reset(): void }, write: (set: KeySetCount) => void): void => {
    if (keySetSource === undefined) return;
    try {
      const sets = keySetSource();
      metric.reset();
      for (const set of sets) write(set);
    } catch {
      // Keep the last values rather than fail the scrape.
    }
  };
  const keysLoaded = new Gauge({
    name: METRIC.keysLoaded,
    help: 'Signing keys currently loaded, by tenant and token version (and B2C user flow or app, for such key sets).',
    labelNames: ['tenant', 'version', 'user_flow', 'app_id'] as const,
    registers,
    // Across worker processes every worker holds the same keys: not a sum.
    aggregator: 'max',
    collect() {
      perKeySet(this, (set) => this.labels(keySetLabels(set)).set(set.keyCount));
    },
  });
  let dryRunSource: (() => boolean) | undefined;
  new Gauge({
    name: METRIC.dryRunActive,
    help: '1 while dry-run is active anywhere in the running configuration (denials are allowed and only recorded), else 0.',
    registers,
    collect() {
      if (dryRunSource === undefined) return;
      try {
        this.set(dryRunSource() ? 1 : 0);
      } catch {
        // Keep the last value rather than fail the scrape.
      }
    },
  });
  // Registered with `registers` and read from the key sets at every scrape; nothing increments it directly.
  new Counter({
    name: METRIC.keyRefreshesAbandoned,
    help: 'Key-set refreshes abandoned because they were stuck past twice their bound, by tenant and token version (and B2C user flow or app).',
    labelNames: ['tenant', 'version', 'user_flow', 'app_id'] as const,
    registers,
    collect() {
      perKeySet(this, (set) => this.labels(keySetLabels(set)).inc(set.abandonedRefreshes ?? 0));
    },
  });
  const configReloads = new Counter({
    name: METRIC.configReloads,
    help: 'Configuration reload attempts by result (success, failure).',
    labelNames: ['result'] as const,
    registers,
  });
  const lastReload = new Gauge({
    name: METRIC.configLastReloadSuccess,
    help: 'Unix time of the last successful configuration load or reload.',
    registers,
    aggregator: 'max',
  });
  const auditDropped = new Counter({
    name: METRIC.auditDropped,
    help: 'Audit records dropped because the audit sink failed or its buffer was full.',
    registers,
  });
  const workerRestarts = new Counter({
    name: METRIC.workerRestarts,
    help: 'Worker processes that died and were replaced (server.workers > 1).',
    registers,
  });

  // Series that should exist from the first scrape, so rate() and ratios work before any event.
  for (const result of ['hit', 'miss']) cacheLookups.labels({ result }).inc(0);
  for (const result of ['success', 'failure']) configReloads.labels({ result }).inc(0);

  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const cacheHit = cacheLookups.labels({ result: 'hit' });
  const cacheMiss = cacheLookups.labels({ result: 'miss' });
  // Bound label children, cached: the hot path (one decision per check) skips label hashing.
  const decisionChild = memoize((key: string) => {
    const [decision = '', reason = '', rule = '', mode = ''] = key.split('\u0000');
    return decisions.labels({ decision, reason, rule, mode });
  });
  const grpcChild = memoize((code: number) => grpcStatus.labels({ grpc_code: String(code) }));
  const durationChild = memoize((key: string) => {
    const [decision = '', mode = ''] = key.split('\u0000');
    return checkDuration.labels({ decision, mode });
  });

  return {
    registry,
    decision(decision, seconds, mode = 'grpc') {
      const rule = decision.rule ?? '';
      decisionChild(`${decision.kind}\u0000${decision.reason}\u0000${rule}\u0000${mode}`).inc();
      // The reason table holds each code's gRPC status, the RPC failure (UNAVAILABLE) included.
      if (mode === 'grpc') grpcChild(REASONS[decision.reason].grpcCode).inc();
      if (decision.dryRun !== undefined) dryRunDenials.labels({ reason: decision.dryRun.wouldDeny, rule }).inc();
      if (Number.isFinite(seconds) && seconds >= 0) durationChild(`${decision.kind}\u0000${mode}`).observe(seconds);
    },
    cache(hit) {
      (hit ? cacheHit : cacheMiss).inc();
    },
    graphLookup(result) {
      graphLookups.labels({ result }).inc();
    },
    keyFetch(kind, result, seconds) {
      const label = result === 'ok' ? 'success' : result === 'error' ? 'failure' : result;
      keyFetches.labels({ kind, result: label }).inc();
      if (Number.isFinite(seconds) && seconds >= 0) keyFetchDuration.labels({ kind }).observe(seconds);
    },
    keysLoaded(tenant, version, n) {
      keysLoaded.labels({ tenant, version }).set(n);
    },
    observeKeySets(source) {
      keySetSource = source;
    },
    observeDryRun(source) {
      dryRunSource = source;
    },
    configReload(result) {
      configReloads.labels({ result }).inc();
      if (result === 'success') lastReload.set(now() / 1000);
    },
    auditDropped(n = 1) {
      if (n > 0) auditDropped.inc(n);
    },
    workerRestarted() {
      workerRestarts.inc();
    },
  };
}

function memoize<K, V>(make: (key: K) => V): (key: K) => V {
  const cache = new Map<K, V>();
  return (key) => {
    let value = cache.get(key);
    if (value === undefined) cache.set(key, (value = make(key)));
    return value;
  };
}
