import type { AsyncLocalStorage } from 'node:async_hooks';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type TextMapPropagator, type Tracer } from '@opentelemetry/api';
import type { Decision } from '../core/decision.js';
import type { CheckMode } from '../core/request.js';
import { GrpcCode } from '../core/reasons.js';
import { parentContextFrom, type GrpcMetadataMap, type HeaderCarrier } from './propagation.js';
import { ATTR, SPAN_CHECK } from './trace-names.js';

/** What the Check handler knows at the end of a check besides the decision itself. */
export interface CheckEndAttributes {
  readonly cacheHit?: boolean;
  /** The front door the check came through; `grpc` when absent. */
  readonly mode?: CheckMode;
  /** Dry-run mode was on for this check; always true when the decision carries `dryRun`. */
  readonly dryRun?: boolean;
  /** HTTP mode: the status the authorization request was answered with. */
  readonly httpStatusCode?: number;
}

/**
 * An HTTP authorization request as its Check span describes it (OpenTelemetry's HTTP server
 * conventions). Only low-cardinality or normalised values: never the query, never headers.
 */
export interface HttpCheckRequest {
  /** Method of the authorization request itself. */
  readonly method: string;
  /** The endpoint's template (`/envoy/*`, `/nginx`, `/forward-auth`); absent for an unknown endpoint. */
  readonly route?: string;
  /** The request path without its query, normalised; absent when it could not be read safely. */
  readonly path?: string;
}

/** One Check's span. Obtain from `CheckTracer.startCheckFrom`; call `end` exactly once. */
export interface CheckSpan {
  /** Trace id (32 hex) for the audit record; undefined when tracing is off. */
  readonly traceId: string | undefined;
  /** Span id (16 hex) of the Check span; undefined when tracing is off. */
  readonly spanId: string | undefined;
  /** Whether the span is being recorded (sampled). Unsampled checks still have ids. */
  readonly recording: boolean;
  /**
   * Runs `fn` inside a child span named `name` (see `PHASE`); `fn` gets the child's context. A
   * thrown error marks the span failed with `error.type` = the error's name — never its message,
   * which might quote input — and is rethrown unchanged.
   */
  phase<T>(name: string, fn: (ctx: Context) => Promise<T>, attributes?: Attributes): Promise<T>;
  /** Sets the decision attributes and status, and ends the span. Later calls are ignored. */
  end(decision: Decision, attributes?: CheckEndAttributes): void;
}

export interface CheckTracer {
  readonly enabled: boolean;
  /**
   * Starts the Check span from the already-parsed request headers and the gRPC call's metadata
   * (see `parentContextFrom`). When tracing is off it looks at neither.
   */
  startCheckFrom(headers: HeaderCarrier, grpcMetadata?: () => GrpcMetadataMap): CheckSpan;
  /** Starts the Check span of an HTTP authorization request: HTTP server shape, no `rpc.*`. */
  startHttpCheckFrom(headers: HeaderCarrier, http: HttpCheckRequest): CheckSpan;
}

const NOOP_CHECK_SPAN: CheckSpan = Object.freeze({
  traceId: undefined,
  spanId: undefined,
  recording: false,
  phase: <T>(_name: string, fn: (ctx: Context) => Promise<T>): Promise<T> => fn(ROOT_CONTEXT),
  end: (): void => undefined,
});

/** The tracer used when tracing is off: every check gets the same frozen no-op span. */
export const NOOP_CHECK_TRACER: CheckTracer = Object.freeze({
  enabled: false,
  startCheckFrom: () => NOOP_CHECK_SPAN,
  startHttpCheckFrom: () => NOOP_CHECK_SPAN,
});

export const errorName = (err: unknown): string => (err instanceof Error ? err.name || 'Error' : typeof err);

const CHECK_ATTRIBUTES: Attributes = Object.freeze({
  [ATTR.rpcSystem]: 'grpc',
  [ATTR.rpcService]: 'envoy.service.auth.v3.Authorization',
  [ATTR.rpcMethod]: 'Check',
});

// The methods OpenTelemetry names as they are; any other is `_OTHER`, so a client cannot mint span names.
const KNOWN_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/** Span name and start attributes of an HTTP-mode check: `{method} {route}`, `HTTP` for unknown methods. */
function httpSpanStart(http: HttpCheckRequest): { name: string; attributes: Attributes } {
  const known = KNOWN_METHODS.has(http.method);
  const method = known ? http.method : '_OTHER';
  const name = `${known ? http.method : 'HTTP'}${http.route === undefined ? '' : ` ${http.route}`}`;
  return {
    name,
    attributes: {
      [ATTR.httpMethod]: method,
      // The original only when it is a plain token: a raw method could be anything a client typed.
      ...(!known && /^[A-Za-z-]{1,32}$/.test(http.method) && { [ATTR.httpMethodOriginal]: http.method }),
      ...(http.route !== undefined && { [ATTR.httpRoute]: http.route }),
      ...(http.path !== undefined && { [ATTR.urlPath]: http.path }),
    },
  };
}

/** Only identifiers and enumerations: never claims beyond tenant and app id, never headers. */
function decisionAttributes(decision: Decision, extra: CheckEndAttributes): Attributes {
  return {
    [ATTR.decisionId]: decision.id,
    [ATTR.decision]: decision.kind,
    [ATTR.reason]: decision.reason,
    [ATTR.dryRun]: extra.dryRun === true || decision.dryRun !== undefined,
    ...(decision.rule !== undefined && { [ATTR.rule]: decision.rule }),
    ...(decision.identity !== undefined && { [ATTR.tenantId]: decision.identity.tid, [ATTR.appId]: decision.identity.appId }),
    ...(extra.cacheHit !== undefined && { [ATTR.cacheHit]: extra.cacheHit }),
    ...(extra.mode !== undefined && { [ATTR.mode]: extra.mode }),
    // An answered Check is an OK RPC whatever it decided; only "could not decide" fails the RPC.
    ...(extra.mode !== 'http' && { [ATTR.grpcStatusCode]: decision.kind === 'unavailable' ? GrpcCode.UNAVAILABLE : GrpcCode.OK }),
    ...(extra.mode === 'http' && extra.httpStatusCode !== undefined && { [ATTR.httpStatusCode]: extra.httpStatusCode }),
    ...(decision.dryRun !== undefined && { [ATTR.wouldDeny]: decision.dryRun.wouldDeny }),
  };
}

function recordingCheckSpan(tracer: Tracer, span: Span, parent: Context, phaseContext: AsyncLocalStorage<Context>): CheckSpan {
  const { traceId, spanId } = span.spanContext();
  const context = trace.setSpan(parent, span);
  const recording = span.isRecording();
  let ended = false;
  return {
    traceId,
    spanId,
    recording,
    async phase(name, fn, attributes) {
      // An unsampled check gets no children: they would be dropped, or sampled alone as orphans.
      if (!recording) return fn(context);
      const child = tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, context);
      const ctx = trace.setSpan(context, child);
      try {
        // Current for everything fn awaits, so a key fetch deep in another module finds its parent.
        return await phaseContext.run(ctx, fn, ctx);
      } catch (err) {
        child.setStatus({ code: SpanStatusCode.ERROR });
        child.setAttribute(ATTR.errorType, errorName(err));
        throw err;
      } finally {
        child.end();
      }
    },
    end(decision, extra = {}) {
      if (ended) return;
      ended = true;
      if (recording) {
        span.setAttributes(decisionAttributes(decision, extra));
        // A deny is the service working as intended, not an error; "could not decide" is.
        if (decision.kind === 'unavailable' || decision.reason === 'internal_error') {
          span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reason });
        }
      }
      span.end();
    },
  };
}

/** Check spans over an SDK tracer; each phase's context is current in `phaseContext` while it runs. */
export function createCheckTracer(tracer: Tracer, propagator: TextMapPropagator, phaseContext: AsyncLocalStorage<Context>): CheckTracer {
  return Object.freeze({
    enabled: true,
    startCheckFrom(headers: HeaderCarrier, grpcMetadata?: () => GrpcMetadataMap): CheckSpan {
      const parent = parentContextFrom(propagator, headers, grpcMetadata?.());
      const span = tracer.startSpan(SPAN_CHECK, { kind: SpanKind.SERVER, attributes: CHECK_ATTRIBUTES }, parent);
      return recordingCheckSpan(tracer, span, parent, phaseContext);
    },
    startHttpCheckFrom(headers: HeaderCarrier, http: HttpCheckRequest): CheckSpan {
      const parent = parentContextFrom(propagator, headers);
      const { name, attributes } = httpSpanStart(http);
      const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
      return recordingCheckSpan(tracer, span, parent, phaseContext);
    },
  });
}
