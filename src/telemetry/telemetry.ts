import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { AuditConfig, TelemetryConfig } from '../config/schema-telemetry.js';
import type { CheckOutcome } from '../core/outcome.js';
import { startAdminServer, type AdminServer, type AdminServerOptions } from './admin.js';
import { buildAuditRecord, createAuditSink, type AuditSink, type AuditSinkTarget } from './audit.js';
import { createMetrics, type GraphLookupResult, type KeyFetchKind, type KeyFetchResult, type Metrics } from './metrics.js';
import type { CheckMode } from '../core/request.js';
import type { CheckSpan } from './check-span.js';
import { packageVersion } from './package-version.js';
import { startTracing, type Tracing } from './tracing.js';

/**
 * Composition of the telemetry parts, so the composition root and the Check handler wire all of
 * it in a few lines:
 *
 * ```ts
 * const telemetry = await startTelemetry({ config: config.telemetry,
 *   serviceName: 'entra-authz', isReady: () => app.isServing(), onWarning: (m) => log.warn(m) });
 * // key store: createKeyStore({ …, fetch: telemetry.traceKeyFetches(fetch), onFetch: telemetry.onKeyFetch });
 * // metrics.observeKeySets(() => keys.stats())
 * // per Check, in the handler:
 * const span = telemetry.checks.startCheckFrom(view.headers, () => call.metadata.getMap());
 * const outcome = await decider.decide(view, span);        // CheckSpan is a PhaseTracer
 * telemetry.recordDecision({ span, outcome, durationMs });
 * // on exit:
 * await telemetry.shutdown();
 * ```
 */

export interface StartTelemetryOptions {
  readonly config: TelemetryConfig;
  readonly serviceName: string;
  /** `service.version` and the build-info metric; default: the version in package.json. */
  readonly serviceVersion?: string;
  readonly isReady: AdminServerOptions['isReady'];
  /** Tracing warnings (ignored OTEL_* values) and span export failures, one message each. */
  readonly onWarning?: (message: string) => void;
  /** Audit sink failures; default: one loud line on stderr per error code. */
  readonly onAuditError?: (err: Error, target: string) => void;
  /** The audit buffer overflowed and records are being dropped; once per sink. Default: a line on stderr. */
  readonly onAuditOverflow?: (maxBufferBytes: number, target: string) => void;
  /** Tests: extra span processors, another audit target, clocks, randomness. */
  readonly spanProcessors?: readonly SpanProcessor[];
  /** Where audit lines go instead of the configured sink (tests; a worker process forwarding to its primary). */
  readonly auditTarget?: AuditSinkTarget;
  /** False in a worker process: its primary serves the admin endpoints for all workers. Default true. */
  readonly serveAdmin?: boolean;
  /** What /metrics serves instead of this process's registry (a primary: the aggregate of its workers). */
  readonly metricsEndpoint?: AdminServerOptions['registry'];
  readonly processMetrics?: boolean;
  readonly now?: () => Date;
  readonly random?: () => number;
}

export interface RecordDecisionInput {
  /** The Check span (from `telemetry.checks.startCheckFrom`). */
  readonly span: CheckSpan;
  /** The engine's outcome, as it is. */
  readonly outcome: CheckOutcome;
  /** Time from receiving the check to the decision, milliseconds. */
  readonly durationMs: number;
  /** Dry-run mode was on for this check; always true when the decision carries `dryRun`. */
  readonly dryRun?: boolean;
  /** The front door the check came through. Default `grpc`. */
  readonly mode?: CheckMode;
  /** HTTP mode: the status the authorization request is answered with. */
  readonly httpStatusCode?: number;
}

export interface Telemetry {
  readonly tracing: Tracing;
  readonly checks: Tracing['checks'];
  /** The key store's `fetch`, each request a `keys.fetch` span (see `Tracing.traceKeyFetches`). */
  readonly traceKeyFetches: Tracing['traceKeyFetches'];
  /** The group resolver's `fetch`, each Microsoft Graph call a `graph.call` span. */
  readonly traceGraphCalls: Tracing['traceGraphCalls'];
  readonly metrics: Metrics;
  /** The admin endpoints (`url` is empty where `serveAdmin` is false). */
  readonly admin: AdminServer;
  /** The current audit sink (replaced by `setAuditConfig`). */
  readonly audit: AuditSink;
  /**
   * Ends the span, counts the decision and writes the audit record. Never throws: telemetry must
   * not turn a decision into an error.
   */
  recordDecision(input: RecordDecisionInput): void;
  /**
   * Feed the key store's `onFetch` here: counts the fetch (its span comes from
   * `traceKeyFetches`).
   */
  onKeyFetch(kind: KeyFetchKind, result: KeyFetchResult, ms: number): void;
  /** Feed the group resolver's `onLookup` here: counts the lookup by result. */
  onGraphLookup(result: GraphLookupResult): void;
  /** Applies a reloaded `telemetry.audit` section (a new sink when the target changed). */
  setAuditConfig(audit: AuditConfig): Promise<void>;
  /** Closes the admin listener, flushes the audit log and the span exporters. Never rejects. */
  shutdown(): Promise<void>;
}

function auditTarget(audit: AuditConfig): AuditSinkTarget {
  if (audit.sink === 'file' && audit.file !== undefined) return { file: audit.file };
  return audit.sink === 'file' ? 'off' : audit.sink;
}

export async function startTelemetry(options: StartTelemetryOptions): Promise<Telemetry> {
  const warn = options.onWarning ?? (() => undefined);
  const now = options.now ?? (() => new Date());

  const version = options.serviceVersion ?? packageVersion();
  const tracing = startTracing({ serviceName: options.serviceName, serviceVersion: version, spanProcessors: options.spanProcessors, onWarning: warn });
  const metrics = createMetrics({ processMetrics: options.processMetrics, version });

  let auditConfig = options.config.audit;
  const makeSink = (audit: AuditConfig, target?: AuditSinkTarget): AuditSink =>
    createAuditSink({
      sink: target ?? auditTarget(audit),
      sampleAllows: audit.sampleAllows,
      random: options.random,
      onError: options.onAuditError,
      onOverflow: options.onAuditOverflow,
      onDrop: (n) => metrics.auditDropped(n),
      maxBufferBytes: audit.maxBufferBytes,
    });
  let audit = makeSink(auditConfig, options.auditTarget);

  let admin: AdminServer = { url: '', close: () => Promise.resolve() };
  try {
    if (options.serveAdmin ?? true) {
      admin = await startAdminServer({ listen: options.config.admin.listen, isReady: options.isReady, registry: options.metricsEndpoint ?? metrics.registry });
    }
  } catch (err) {
    await Promise.all([audit.close(), tracing.shutdown()]);
    throw err;
  }

  let shuttingDown: Promise<void> | undefined;
  return {
    tracing,
    checks: tracing.checks,
    traceKeyFetches: tracing.traceKeyFetches,
    traceGraphCalls: tracing.traceGraphCalls,
    metrics,
    admin,
    get audit() {
      return audit;
    },
    recordDecision({ span, outcome, durationMs, dryRun: dryRunMode, mode = 'grpc', httpStatusCode }) {
      const { decision, tokenCacheHit } = outcome;
      const dryRun = dryRunMode === true || decision.dryRun !== undefined;
      try {
        span.end(decision, { cacheHit: tokenCacheHit ?? false, dryRun, mode, httpStatusCode });
      } catch {
        // Tracing problems never affect the decision.
      }
      try {
        metrics.decision(decision, durationMs / 1000, mode);
        if (tokenCacheHit !== undefined) metrics.cache(tokenCacheHit);
      } catch {
        // Idem for metrics.
      }
      if (!audit.enabled) return;
      try {
        // Field by field, not a spread of the outcome: this runs once per check.
        audit.write(
          buildAuditRecord({
            decision,
            request: outcome.request,
            peer: outcome.peer,
            outcomes: outcome.outcomes,
            tokenCacheHit,
            rejectedTokenHash: outcome.rejectedTokenHash,
            durationMs,
            dryRun,
            mode,
            traceId: span.traceId,
            spanId: span.spanId,
            now: now(),
            redactQuery: auditConfig.redactQuery,
          }),
        );
      } catch {
        // The sink already never throws; this guards buildAuditRecord against the unforeseen.
      }
    },
    onKeyFetch(kind, result, ms) {
      try {
        metrics.keyFetch(kind, result, ms / 1000);
      } catch {
        // Telemetry never disturbs the key store.
      }
    },
    onGraphLookup(result) {
      try {
        metrics.graphLookup(result);
      } catch {
        // Telemetry never disturbs a membership lookup.
      }
    },
    async setAuditConfig(next) {
      const sameTarget = JSON.stringify(auditTarget(next)) === JSON.stringify(auditTarget(auditConfig));
      const sameSink = next.sampleAllows === auditConfig.sampleAllows && next.maxBufferBytes === auditConfig.maxBufferBytes;
      auditConfig = next;
      if (sameTarget && sameSink) return;
      const old = audit;
      audit = makeSink(next, options.auditTarget);
      await old.close();
    },
    shutdown: () =>
      (shuttingDown ??= (async () => {
        await admin.close().catch(() => undefined);
        await audit.close();
        await tracing.shutdown();
      })()),
  };
}
