/**
 * The composition root: the one place that builds the runtime for a configuration — key store,
 * verifier, token cache, peer resolver, compiled rules, decider, response settings — and swaps it
 * whole on reload. It also owns readiness and close. Adapters (src/server) only translate their
 * wire format to a `RequestView` and a `ResponsePlan` back; they never build engine parts.
 */
import { randomUUID } from 'node:crypto';
import { createGroupResolver, type GroupResolver } from '../authn/entra/graph.js';
import { createGraphTokenSource, loadAzureIdentity } from '../authn/entra/graph-credential.js';
import { createKeyStore, type KeyStore } from '../authn/entra/keystore.js';
import { b2cUrl, entraUrl } from '../authn/entra/urls.js';
import { createTokenVerifier } from '../authn/entra/verifier.js';
import { createPeerResolver, peerMetadata } from '../authn/mtls/index.js';
import { createCachingVerifier } from '../cache/token-cache.js';
import { createConfigHolder, entraChanged } from '../config/reload.js';
import type { Config } from '../config/schema.js';
import type { DenyDecision } from '../core/decision.js';
import type { PeerIdentity } from '../core/identity.js';
import type { MaybePromise } from '../core/maybe-async.js';
import type { CheckOutcome } from '../core/outcome.js';
import type { CheckMode, NormalizeResult, RequestLimits } from '../core/request.js';
import { headerStripping, planResponse, type PeerFacts, type ResponsePlan, type ResponseSettings } from '../core/response.js';
import { createDecider, type Decider } from '../engine/decide.js';
import { dryRunScope } from '../policy/compile.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { NOOP_CHECK_TRACER, type CheckSpan, type GrpcMetadataMap, type HttpCheckRequest } from '../telemetry/tracing.js';
import { loadPeerSettings } from './peer-settings.js';

/** The parts of telemetry the runtime feeds; `Telemetry` fits. Without `traceKeyFetches`, key fetches get no spans. */
export type RuntimeTelemetry = Pick<Telemetry, 'checks' | 'recordDecision' | 'onKeyFetch'> & Partial<Pick<Telemetry, 'traceKeyFetches' | 'traceGraphCalls' | 'onGraphLookup'>> & {
  readonly metrics: Pick<Metrics, 'observeKeySets' | 'observeDryRun'>;
};

export interface RuntimeDeps {
  /**
   * How the key store fetches OpenID metadata and JWKS (plain GETs). Worker processes pass the
   * primary's shared fetch here, so key documents are fetched once for all workers. Default: fetch.
   */
  readonly keyDocumentFetch?: typeof globalThis.fetch;
  /** Every other outbound call (Microsoft Graph POSTs with the server's token). Default: fetch. */
  readonly fetch?: typeof globalThis.fetch;
  /** Milliseconds since the epoch; tests freeze it. */
  readonly now?: () => number;
  readonly log: Logger;
  /** Decision ids; also used for the deny of a check that failed unexpectedly. */
  readonly newId?: () => string;
  /** Spans, metrics and audit records; none when omitted (tests of the decision path alone). */
  readonly telemetry?: RuntimeTelemetry;
  /** The server's Graph access token per tenant (group overage). Default: `entra.graph.credential` through @azure/identity. */
  readonly graphToken?: (tenant: string) => Promise<string>;
  /** Turns a decision into a response plan. Default: core's `planResponse`. */
  readonly planResponse?: typeof planResponse;
}

/** One configuration's runtime; a check takes one snapshot when it starts and keeps it. */
export interface RuntimeSnapshot {
  readonly config: Config;
  /** Limits an adapter normalises its requests with. */
  readonly limits: RequestLimits;
  /**
   * Decides a request the adapter normalised (or could not), records it, and plans the response:
   * at once when the decision needed no waiting (see `Decider.decide`), else as a promise. Never
   * throws or rejects: anything unexpected becomes an `internal_error` deny and a log line.
   */
  check(request: NormalizeResult, via?: CheckVia): MaybePromise<ResponsePlan>;
}

/** How a check arrived, for telemetry. */
export interface CheckVia {
  /** The adapter's protocol: the `mode` of metrics, audit records and spans. Default `grpc`. */
  readonly mode?: CheckMode;
  /** Transport metadata that may carry trace context (gRPC metadata map), read only when tracing is on. */
  readonly traceMetadata?: () => GrpcMetadataMap;
  /** An HTTP authorization request: its span gets the HTTP server shape instead of the gRPC one. */
  readonly http?: HttpCheckRequest;
  /** The HTTP status the adapter will answer a plan with, for the span. */
  readonly answerStatus?: (plan: ResponsePlan) => number;
}

export interface Runtime {
  current(): RuntimeSnapshot;
  /** Loads the signing keys (in the background after the first load); resolves when tried once. */
  start(): Promise<void>;
  /** True once signing keys for every configured tenant are loaded, until close. */
  isServing(): boolean;
  /** Why signing keys keep the runtime from serving (empty when they do not), for /readyz. */
  keyProblems(): readonly string[];
  /** Called whenever `isServing()` may have changed. */
  onServingChange(listener: () => void): void;
  /**
   * Installs a new, already validated configuration: checks in flight finish on the one they
   * started with. The key store is rebuilt only when the `entra` section changed, and the new one
   * must load before it replaces the old; if it cannot, this rejects and the running one stays.
   */
  reload(config: Config): Promise<void>;
  /** Stops serving (readiness turns false) and stops refreshing keys. Idempotent. */
  close(): void;
}

export function responseSettings(config: Config): ResponseSettings {
  const tenant = (config.entra.tenants.length === 1 ? config.entra.tenants[0] : undefined) ?? 'organizations';
  return {
    identityHeaders: config.response.identityHeaders,
    tokenHeader: config.entra.tokenHeader,
    removeTokenHeader: config.response.removeTokenHeader,
    realm: config.response.realm,
    // B2C has no tenant-wide authorize endpoint: sign-in goes through a user flow, the first listed.
    authorizationUri:
      config.entra.b2c === undefined
        ? entraUrl(config.entra.authority, tenant, 'authorize', '1.0')
        : b2cUrl(config.entra.authority, config.entra.b2c.tenant ?? tenant, config.entra.b2c.userFlows[0] ?? '', 'authorize'),
    dryRunHeader: config.response.dryRunHeader,
    stripHeaders: headerStripping(config.response.stripHeaders),
    planScope: randomUUID(),
  };
}

function peerFacts(peer: PeerIdentity | undefined): PeerFacts | undefined {
  return peer && { principal: peer.principal, fingerprintSha256: peer.fingerprintSha256, metadata: peerMetadata(peer) };
}

const NO_HEADERS: ReadonlyMap<string, readonly string[]> = new Map();

interface Parts {
  readonly config: Config;
  readonly keys: KeyStore;
  readonly decider: Decider;
  readonly settings: ResponseSettings;
}

/** Builds the runtime for `config`; the signing keys load on `start()`. */
export async function createRuntime(config: Config, deps: RuntimeDeps): Promise<Runtime> {
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? randomUUID;
  const { log, telemetry } = deps;
  const plan = deps.planResponse ?? planResponse;
  const checks = telemetry?.checks ?? NOOP_CHECK_TRACER;

  const newKeyStore = (cfg: Config): KeyStore =>
    createKeyStore({
      config: cfg.entra,
      ...(deps.keyDocumentFetch ? { fetch: deps.keyDocumentFetch } : {}),
      ...(telemetry?.traceKeyFetches ? { wrapFetch: telemetry.traceKeyFetches } : {}),
      now,
      checkDeadlineMs: cfg.server.checkDeadlineMs,
      log: ({ level, msg, ...fields }) => log[level](fields, msg),
      ...(telemetry ? { onFetch: telemetry.onKeyFetch } : {}),
    });

  const groupResolver = async (cfg: Config): Promise<GroupResolver | undefined> => {
    const graph = cfg.entra.graph;
    if (graph === undefined) return undefined;
    return createGroupResolver({
      settings: { endpoint: graph.endpoint, timeoutMs: graph.timeoutMs, cacheMaxEntries: graph.cache.maxEntries, cacheTtlSeconds: graph.cache.ttlSeconds },
      graphToken: deps.graphToken ?? createGraphTokenSource(graph, cfg.entra.authority, await loadAzureIdentity()),
      fetch: telemetry?.traceGraphCalls ? telemetry.traceGraphCalls(deps.fetch ?? globalThis.fetch) : (deps.fetch ?? globalThis.fetch),
      now,
      ...(telemetry?.onGraphLookup ? { onLookup: telemetry.onGraphLookup } : {}),
    });
  };

  const partsFor = async (cfg: Config, keys: KeyStore): Promise<Parts> => {
    const verifier = createCachingVerifier(
      createTokenVerifier({ config: cfg.entra, keys, now }),
      { ...cfg.entra.tokenCache, clockSkewSeconds: cfg.entra.clockSkewSeconds },
      now,
    );
    const peer = createPeerResolver(await loadPeerSettings(cfg.peer));
    const decider = createDecider({ config: cfg, verifier, newId, now, peer, groups: await groupResolver(cfg) });
    return { config: cfg, keys, decider, settings: responseSettings(cfg) };
  };

  /** The HTTP status an HTTP-mode span records; undefined in gRPC mode or if the adapter's mapping fails. */
  const statusFor = (via: CheckVia, response: ResponsePlan): number | undefined => {
    try {
      return via.answerStatus?.(response);
    } catch {
      return undefined;
    }
  };

  /** Fail closed: whatever went wrong, the caller gets an `internal_error` deny and the log one line. */
  const failClosed = (err: unknown, span: CheckSpan, request: NormalizeResult, settings: ResponseSettings, started: number, via: CheckVia): ResponsePlan => {
    const decision: DenyDecision = { kind: 'deny', id: newId(), reason: 'internal_error', detail: 'unexpected error', rule: undefined, identity: undefined };
    // The error's name only: a library's message may quote its input.
    log.error({ decisionId: decision.id, error: err instanceof Error ? err.name : typeof err }, 'check failed unexpectedly; denied');
    let response: ResponsePlan;
    try {
      response = plan(decision, settings);
    } catch {
      response = planResponse(decision, settings);
    }
    try {
      const outcome = { decision, request: request.ok ? request.request : undefined, outcomes: [] };
      telemetry?.recordDecision({ span, outcome, durationMs: performance.now() - started, mode: via.mode, httpStatusCode: statusFor(via, response) });
    } catch {
      // Already logged above; the deny stands.
    }
    return response;
  };

  const snapshotOf = (parts: Parts): RuntimeSnapshot => ({
    config: parts.config,
    limits: parts.decider.limits,
    check(request, via: CheckVia = {}) {
      const started = performance.now();
      const headers = request.ok ? request.request.headers : NO_HEADERS;
      const span = via.http ? checks.startHttpCheckFrom(headers, via.http) : checks.startCheckFrom(headers, via.traceMetadata);
      const answer = (outcome: CheckOutcome): ResponsePlan => {
        const response = plan(outcome.decision, parts.settings, peerFacts(outcome.peer), outcome.request?.headers.keys());
        const durationMs = performance.now() - started;
        telemetry?.recordDecision({ span, outcome, durationMs, mode: via.mode, httpStatusCode: statusFor(via, response) });
        return response;
      };
      const failed = (err: unknown): ResponsePlan => failClosed(err, span, request, parts.settings, started, via);
      try {
        const outcome = request.ok ? parts.decider.decide(request.request, span) : parts.decider.unreadable(request.detail);
        return outcome instanceof Promise ? outcome.then(answer).catch(failed) : answer(outcome);
      } catch (err) {
        return failed(err);
      }
    },
  });

  /** Dry-run lets would-be denials through: say so loudly whenever such a configuration starts. */
  const warnDryRun = (cfg: Config, when: 'start' | 'reload'): void => {
    const scope = dryRunScope(cfg);
    if (!scope.active) return;
    log.warn({ when, dryRun: scope.global, dryRunRules: scope.rules }, 'dry-run is active: requests that would be denied are allowed and only recorded');
  };

  const initial = await partsFor(config, newKeyStore(config));
  const holder = createConfigHolder({ parts: initial, snapshot: snapshotOf(initial) });
  const parts = (): Parts => holder.current().parts;
  telemetry?.metrics.observeKeySets(() => parts().keys.stats());
  telemetry?.metrics.observeDryRun(() => dryRunScope(parts().config).active);
  warnDryRun(config, 'start');

  const listeners: (() => void)[] = [];
  const notify = (): void => {
    for (const listener of listeners) listener();
  };
  let closed = false;
  let unsubscribe = initial.keys.onReadyChange(notify);

  return {
    current: () => holder.current().snapshot,
    start: () => parts().keys.start().then(notify),
    isServing: () => !closed && parts().keys.isReady(),
    keyProblems: () => parts().keys.readiness().problems,
    onServingChange(listener) {
      listeners.push(listener);
    },
    async reload(next) {
      if (closed) return;
      const previous = parts();
      const install = (p: Parts): void => {
        holder.replace({ parts: p, snapshot: snapshotOf(p) });
      };
      if (!entraChanged(previous.config, next)) {
        install(await partsFor(next, previous.keys));
      } else {
        const fresh = newKeyStore(next);
        await fresh.start();
        if (!fresh.isReady() || closed) {
          fresh.stop();
          throw new Error('the signing keys of the new entra section could not be loaded; keeping the running configuration');
        }
        try {
          install(await partsFor(next, fresh));
        } catch (err) {
          fresh.stop();
          throw err;
        }
        unsubscribe();
        unsubscribe = fresh.onReadyChange(notify);
        previous.keys.stop();
      }
      notify();
      log.info({ rules: next.rules.length, keysRebuilt: previous.keys !== parts().keys }, 'configuration reloaded');
      warnDryRun(next, 'reload');
    },
    close() {
      if (closed) return;
      closed = true;
      notify();
      parts().keys.stop();
    },
  };
}
