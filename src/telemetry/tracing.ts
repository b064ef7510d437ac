import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanOptions,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { OTLPTraceExporter as OtlpHttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpGrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Decision } from '../core/decision.js';
import type { CheckMode } from '../core/request.js';

/**
 * Tracing for entra-authz: one SERVER span per Check whose parent is the *user request's* trace
 * (taken from the CheckRequest headers), child spans for the phases of a check, and attributes that
 * describe the decision — never token contents.
 *
 * Nothing here touches OpenTelemetry's global state: no global tracer provider, propagator or
 * context manager is registered, so importing this module costs nothing and tests can start as many
 * independent tracers as they like. Code elsewhere (authn, policy) only ever sees the
 * `@opentelemetry/api` `Tracer` and `Context` types handed to it.
 */

// ---------------------------------------------------------------------------------------------
// Span and attribute names (part of the observable contract; documented in docs/observability.md)
// ---------------------------------------------------------------------------------------------

export const SPAN_CHECK = 'envoy.service.auth.v3.Authorization/Check';

/**
 * Names of the child spans of a check. The first two are the names the decision engine
 * (`src/engine/decide.ts`, `PhaseTracer`) passes to `CheckSpan.phase`.
 */
export const PHASE = {
  verifyToken: 'token.verify',
  evaluateRules: 'policy.evaluate',
  keyFetch: 'keys.fetch',
  peerIdentity: 'peer.identify',
} as const;

export const ATTR = {
  decisionId: 'entra_authz.decision_id',
  decision: 'entra_authz.decision',
  reason: 'entra_authz.reason',
  rule: 'entra_authz.rule',
  tenantId: 'entra_authz.tenant_id',
  appId: 'entra_authz.app_id',
  cacheHit: 'entra_authz.cache_hit',
  /** `grpc` (Envoy's Check) or `http` (an HTTP authorization request). */
  mode: 'entra_authz.mode',
  dryRun: 'entra_authz.dry_run',
  /** On dry-run allows: the reason code enforcement would have denied with. */
  wouldDeny: 'entra_authz.would_deny',
  /** On key-fetch spans: `discovery` or `jwks`. */
  keyFetchKind: 'entra_authz.key_fetch.kind',
  /** On key-fetch spans: `ok` or `error` (the key store's words). */
  keyFetchResult: 'entra_authz.key_fetch.result',
  errorType: 'error.type',
} as const;

// ---------------------------------------------------------------------------------------------
// Parent context extraction
// ---------------------------------------------------------------------------------------------

/** gRPC call metadata as `Metadata.getMap()` returns it; binary (`-bin`) values are ignored. */
export type GrpcMetadataMap = Readonly<Record<string, string | Uint8Array | readonly string[] | undefined>>;

/** Lower-case header name → values, as in `RequestView.headers`. */
export type HeaderCarrier = ReadonlyMap<string, readonly string[]>;

const headerGetter: TextMapGetter<HeaderCarrier> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => {
    const values = carrier.get(key);
    if (values === undefined || values.length === 0) return undefined;
    return values.length === 1 ? values[0] : [...values];
  },
};

const metadataGetter: TextMapGetter<GrpcMetadataMap> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = Object.hasOwn(carrier, key) ? carrier[key] : undefined;
    if (typeof value === 'string') return value;
    if (Array.isArray(value)) {
      const strings = value.filter((v): v is string => typeof v === 'string');
      return strings.length === 0 ? undefined : strings;
    }
    return undefined;
  },
};

// Stateless, immutable helpers: safe to share across instances.
const w3c = new W3CTraceContextPropagator();
const b3 = new B3Propagator();

const TRACE_HEADERS = ['traceparent', 'b3', 'x-b3-traceid'] as const;

function extractOne<C>(carrier: C, getter: TextMapGetter<C>): Context | undefined {
  try {
    // W3C first: it is the standard and the one that carries tracestate. B3 (single `b3` header,
    // else multi `x-b3-*`) second, for meshes that still speak Zipkin.
    const fromW3c = w3c.extract(ROOT_CONTEXT, carrier, getter);
    if (trace.getSpanContext(fromW3c) !== undefined) return fromW3c;
    const fromB3 = b3.extract(ROOT_CONTEXT, carrier, getter);
    if (trace.getSpanContext(fromB3) !== undefined) return fromB3;
  } catch {
    // A propagator choking on hostile input must never fail a check: start a new trace instead.
  }
  return undefined;
}

/**
 * The parent for a Check span: the trace context of the user's request taken from the CheckRequest
 * headers (W3C `traceparent`/`tracestate`, else B3 single `b3`, else B3 multi `x-b3-*`); failing
 * that, the trace context in the gRPC call's own metadata (what Envoy injects when it traces the
 * ext_authz call itself). Malformed values are ignored: the result is then `ROOT_CONTEXT` and the
 * span starts a new trace. Never throws.
 *
 * @param headers  `RequestView.headers` (lower-case names).
 * @param grpcMetadata  `call.metadata.getMap()`; keys are lower-case in grpc-js.
 */
export function parentContextFrom(headers: HeaderCarrier, grpcMetadata: GrpcMetadataMap = {}): Context {
  if (TRACE_HEADERS.some((h) => headers.has(h))) {
    const ctx = extractOne(headers, headerGetter);
    if (ctx !== undefined) return ctx;
  }
  if (TRACE_HEADERS.some((h) => Object.hasOwn(grpcMetadata, h))) {
    const ctx = extractOne(grpcMetadata, metadataGetter);
    if (ctx !== undefined) return ctx;
  }
  return ROOT_CONTEXT;
}

const TRACE_HEADER_NAMES: ReadonlySet<string> = new Set([
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
]);

const EMPTY_HEADERS: HeaderCarrier = new Map();

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The trace-context headers of a raw decoded CheckRequest (proto-loader `keepCase: true` shape),
 * lower-cased, from `attributes.request.http.headers` and `header_map.headers`. Reads nothing
 * else; never throws (anything unexpected gives an empty map, hence a new trace).
 */
export function traceHeadersOf(checkRequest: unknown): HeaderCarrier {
  try {
    const attributes = isObj(checkRequest) ? checkRequest['attributes'] : undefined;
    const request = isObj(attributes) ? attributes['request'] : undefined;
    const http = isObj(request) ? request['http'] : undefined;
    if (!isObj(http)) return EMPTY_HEADERS;
    let out: Map<string, string[]> | undefined;
    const add = (name: unknown, value: unknown): void => {
      if (typeof name !== 'string' || typeof value !== 'string') return;
      const key = name.toLowerCase();
      if (!TRACE_HEADER_NAMES.has(key)) return;
      out ??= new Map();
      const list = out.get(key);
      if (list) list.push(value);
      else out.set(key, [value]);
    };
    const headers = http['headers'];
    if (isObj(headers)) for (const name of Object.keys(headers)) add(name, headers[name]);
    const headerMap = isObj(http['header_map']) ? http['header_map']['headers'] : undefined;
    if (Array.isArray(headerMap)) {
      for (const entry of headerMap) {
        if (!isObj(entry)) continue;
        const raw = entry['raw_value'];
        const value = typeof entry['value'] === 'string' && entry['value'] !== '' ? entry['value'] : raw instanceof Uint8Array ? Buffer.from(raw).toString('latin1') : undefined;
        add(entry['key'], value);
      }
    }
    return out ?? EMPTY_HEADERS;
  } catch {
    return EMPTY_HEADERS;
  }
}

// ---------------------------------------------------------------------------------------------
// The CheckTracer facade
// ---------------------------------------------------------------------------------------------

/** What the Check handler knows at the end of a check besides the decision itself. */
export interface CheckEndAttributes {
  readonly cacheHit?: boolean;
  /** The front door the check came through. */
  readonly mode?: CheckMode;
  /** Dry-run mode was on for this check; always true when the decision carries `dryRun`. */
  readonly dryRun?: boolean;
}

/** One Check's span. Obtain from `CheckTracer.startCheck*`; call `end` exactly once. */
export interface CheckSpan {
  /** Trace id (32 hex) for the audit record; undefined when tracing is off. */
  readonly traceId: string | undefined;
  /** Span id (16 hex) of the Check span; undefined when tracing is off. */
  readonly spanId: string | undefined;
  /** Whether the span is being recorded (sampled). Unsampled checks still have ids. */
  readonly recording: boolean;
  /** Context holding the Check span: the parent for spans started by other modules. */
  readonly context: Context;
  /**
   * Runs `fn` inside a child span named `name` (see `PHASE`). `fn` receives the child's context, to
   * pass on to code that starts its own spans (e.g. a key fetch inside token verification). A
   * thrown error marks the span as failed with `error.type` = the error's name — never its message,
   * which might quote input — and is rethrown unchanged.
   */
  phase<T>(name: string, fn: (ctx: Context) => Promise<T>, attributes?: Attributes): Promise<T>;
  /** Sets the decision attributes and status, and ends the span. Later calls are ignored. */
  end(decision: Decision, attributes?: CheckEndAttributes): void;
}

export interface CheckTracer {
  readonly enabled: boolean;
  /** Starts a Check span under `parent` (usually from `parentContextFrom`). */
  startCheck(parent: Context): CheckSpan;
  /**
   * Extracts the parent and starts the Check span in one step. Prefer this in the handler: when
   * tracing is off it does not even look at the headers.
   */
  startCheckFrom(headers: HeaderCarrier, grpcMetadata?: GrpcMetadataMap): CheckSpan;
  /**
   * Same, from the raw decoded CheckRequest (before it is normalized): reads only the trace
   * headers, from `attributes.request.http.headers` or `header_map`. When tracing is off it
   * does not look at the request at all.
   */
  startCheckFromRequest(checkRequest: unknown, grpcMetadata?: GrpcMetadataMap): CheckSpan;
}

const NOOP_CHECK_SPAN: CheckSpan = Object.freeze({
  traceId: undefined,
  spanId: undefined,
  recording: false,
  context: ROOT_CONTEXT,
  phase<T>(_name: string, fn: (ctx: Context) => Promise<T>): Promise<T> {
    return fn(ROOT_CONTEXT);
  },
  end(): void {},
});

/** The tracer used when tracing is off: every call returns the same frozen no-op span. */
export const NOOP_CHECK_TRACER: CheckTracer = Object.freeze({
  enabled: false,
  startCheck: (): CheckSpan => NOOP_CHECK_SPAN,
  startCheckFrom: (): CheckSpan => NOOP_CHECK_SPAN,
  startCheckFromRequest: (): CheckSpan => NOOP_CHECK_SPAN,
});

function errorName(err: unknown): string {
  if (err instanceof Error) return err.name || 'Error';
  return typeof err;
}

const CHECK_SPAN_OPTIONS: SpanOptions = Object.freeze({
  kind: SpanKind.SERVER,
  attributes: Object.freeze({
    'rpc.system': 'grpc',
    'rpc.service': 'envoy.service.auth.v3.Authorization',
    'rpc.method': 'Check',
  }),
});

class RecordingCheckSpan implements CheckSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly recording: boolean;
  readonly context: Context;
  private ended = false;

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    parent: Context,
    private readonly phaseContext: AsyncLocalStorage<Context> | undefined,
  ) {
    const sc = span.spanContext();
    this.traceId = sc.traceId;
    this.spanId = sc.spanId;
    this.recording = span.isRecording();
    this.context = trace.setSpan(parent, span);
  }

  async phase<T>(name: string, fn: (ctx: Context) => Promise<T>, attributes?: Attributes): Promise<T> {
    // An unsampled check gets no children: they would be dropped anyway, or — with a non-parent-
    // based sampler — sampled on their own and exported as orphans.
    if (!this.recording) return fn(this.context);
    const child = this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, this.context);
    const ctx = trace.setSpan(this.context, child);
    try {
      // The phase's context is also made current for everything fn awaits, so that work it
      // triggers deep inside other modules (a key fetch during token verification) can be parented
      // to it without those modules knowing about tracing — see `Tracing.recordKeyFetch`.
      return await (this.phaseContext ? this.phaseContext.run(ctx, fn, ctx) : fn(ctx));
    } catch (err) {
      child.setStatus({ code: SpanStatusCode.ERROR });
      child.setAttribute(ATTR.errorType, errorName(err));
      throw err;
    } finally {
      child.end();
    }
  }

  end(decision: Decision, attributes: CheckEndAttributes = {}): void {
    if (this.ended) return;
    this.ended = true;
    const span = this.span;
    if (span.isRecording()) {
      // Only identifiers and enumerations: the decision id, outcome, stable reason code, rule name,
      // tenant GUID and calling app's client id. No claims values beyond those, no headers.
      span.setAttribute(ATTR.decisionId, decision.id);
      span.setAttribute(ATTR.decision, decision.kind);
      span.setAttribute(ATTR.reason, decision.reason);
      if (decision.rule !== undefined) span.setAttribute(ATTR.rule, decision.rule);
      if (decision.identity !== undefined) {
        span.setAttribute(ATTR.tenantId, decision.identity.tid);
        span.setAttribute(ATTR.appId, decision.identity.appId);
      }
      if (attributes.cacheHit !== undefined) span.setAttribute(ATTR.cacheHit, attributes.cacheHit);
      if (attributes.mode !== undefined) span.setAttribute(ATTR.mode, attributes.mode);
      span.setAttribute(ATTR.dryRun, attributes.dryRun === true || decision.dryRun !== undefined);
      if (decision.dryRun !== undefined) span.setAttribute(ATTR.wouldDeny, decision.dryRun.wouldDeny);
      // A deny is the service working as intended, not an error; "could not decide" is.
      if (decision.kind === 'unavailable' || decision.reason === 'internal_error') {
        span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reason });
      }
    }
    span.end();
  }
}

/**
 * Builds a CheckTracer over any API tracer (the SDK's, or a no-op one: see `NOOP_CHECK_TRACER`).
 * With `phaseContext`, each phase's context is current (in that AsyncLocalStorage) while it runs.
 */
export function createCheckTracer(tracer: Tracer, phaseContext?: AsyncLocalStorage<Context>): CheckTracer {
  const startCheck = (parent: Context): CheckSpan =>
    new RecordingCheckSpan(tracer, tracer.startSpan(SPAN_CHECK, CHECK_SPAN_OPTIONS, parent), parent, phaseContext);
  return Object.freeze({
    enabled: true,
    startCheck,
    startCheckFrom: (headers: HeaderCarrier, grpcMetadata?: GrpcMetadataMap): CheckSpan =>
      startCheck(parentContextFrom(headers, grpcMetadata)),
    startCheckFromRequest: (checkRequest: unknown, grpcMetadata?: GrpcMetadataMap): CheckSpan =>
      startCheck(parentContextFrom(traceHeadersOf(checkRequest), grpcMetadata)),
  });
}

// ---------------------------------------------------------------------------------------------
// Configuration from OTEL_* environment variables
// ---------------------------------------------------------------------------------------------

export type Env = Readonly<Record<string, string | undefined>>;
export type OtlpProtocol = 'grpc' | 'http/protobuf' | 'http/json';
export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

/** What `startTracing` decided from the environment; pure data, for logging and tests. */
export interface TracingSettings {
  readonly enabled: boolean;
  /** One line on why tracing is on or off, for the startup log. */
  readonly why: string;
  readonly exporters: readonly ('otlp' | 'console')[];
  readonly protocol: OtlpProtocol;
  /** Full URL the OTLP exporter sends to (`…/v1/traces` for HTTP, `scheme://host:port` for gRPC). */
  readonly endpoint: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMillis: number;
  readonly sampler: { readonly name: SamplerName; readonly ratio: number };
  readonly batch: {
    readonly scheduledDelayMillis: number;
    readonly exportTimeoutMillis: number;
    readonly maxQueueSize: number;
    readonly maxExportBatchSize: number;
  };
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** Problems found in the environment (ignored values); log them at startup. */
  readonly warnings: readonly string[];
}

const SAMPLERS: ReadonlySet<string> = new Set<SamplerName>([
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
]);

function envString(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

function envInt(env: Env, name: string, fallback: number, warnings: string[], min = 0): number {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    warnings.push(`${name}=${JSON.stringify(raw)} is not an integer >= ${min}; using ${fallback}`);
    return fallback;
  }
  return n;
}

/** `k1=v1,k2=v2` with percent-encoded values (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES). */
function parseKeyValueList(raw: string | undefined, name: string, warnings: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined) return out;
  for (const part of raw.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const key = eq === -1 ? '' : part.slice(0, eq).trim();
    if (key === '') {
      warnings.push(`${name}: ignoring an entry without a key`);
      continue;
    }
    try {
      out[key] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      warnings.push(`${name}: ignoring ${JSON.stringify(key)}, its value is not valid percent-encoding`);
    }
  }
  return out;
}

function appendPath(base: string, path: string): string {
  return base.endsWith('/') ? base + path : `${base}/${path}`;
}

/**
 * Reads the standard OpenTelemetry SDK variables. Defaults follow the specification, except one:
 * tracing is **off** unless asked for, by `OTEL_TRACES_EXPORTER` or an OTLP endpoint variable, so a
 * plain deployment neither pays for spans nor tries to reach a collector on localhost.
 *
 * @param hasInjectedProcessors  span processors passed in code count as an exporter.
 */
export function resolveTracingSettings(env: Env, hasInjectedProcessors = false): TracingSettings {
  const warnings: string[] = [];

  const tracesEndpoint = envString(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const genericEndpoint = envString(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');

  const rawProtocol = (
    envString(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ??
    envString(env, 'OTEL_EXPORTER_OTLP_PROTOCOL') ??
    'http/protobuf'
  ).toLowerCase();
  let protocol: OtlpProtocol = 'http/protobuf';
  if (rawProtocol === 'grpc' || rawProtocol === 'http/protobuf' || rawProtocol === 'http/json') protocol = rawProtocol;
  else warnings.push(`OTLP protocol ${JSON.stringify(rawProtocol)} is not supported; using http/protobuf`);

  const endpoint =
    tracesEndpoint ??
    (protocol === 'grpc'
      ? (genericEndpoint ?? 'http://localhost:4317')
      : appendPath(genericEndpoint ?? 'http://localhost:4318', 'v1/traces'));

  const headers = {
    ...parseKeyValueList(envString(env, 'OTEL_EXPORTER_OTLP_HEADERS'), 'OTEL_EXPORTER_OTLP_HEADERS', warnings),
    ...parseKeyValueList(envString(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'), 'OTEL_EXPORTER_OTLP_TRACES_HEADERS', warnings),
  };
  const timeoutMillis = envInt(
    env,
    envString(env, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT' : 'OTEL_EXPORTER_OTLP_TIMEOUT',
    10_000,
    warnings,
    1,
  );

  // Sampler.
  const rawSampler = (envString(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on').toLowerCase();
  let samplerName: SamplerName = 'parentbased_always_on';
  if (SAMPLERS.has(rawSampler)) samplerName = rawSampler as SamplerName;
  else warnings.push(`OTEL_TRACES_SAMPLER=${JSON.stringify(rawSampler)} is not supported; using parentbased_always_on`);
  let ratio = 1;
  const rawArg = envString(env, 'OTEL_TRACES_SAMPLER_ARG');
  if (rawArg !== undefined && samplerName.endsWith('traceidratio')) {
    const r = Number(rawArg);
    if (Number.isFinite(r) && r >= 0 && r <= 1) ratio = r;
    else warnings.push(`OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(rawArg)} is not a ratio in [0, 1]; using 1`);
  }

  const batch = {
    scheduledDelayMillis: envInt(env, 'OTEL_BSP_SCHEDULE_DELAY', 5000, warnings),
    exportTimeoutMillis: envInt(env, 'OTEL_BSP_EXPORT_TIMEOUT', 30_000, warnings, 1),
    maxQueueSize: envInt(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 2048, warnings, 1),
    maxExportBatchSize: envInt(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512, warnings, 1),
  };
  if (batch.maxExportBatchSize > batch.maxQueueSize) {
    warnings.push('OTEL_BSP_MAX_EXPORT_BATCH_SIZE exceeds OTEL_BSP_MAX_QUEUE_SIZE; using the queue size');
    batch.maxExportBatchSize = batch.maxQueueSize;
  }

  const resourceAttributes = parseKeyValueList(envString(env, 'OTEL_RESOURCE_ATTRIBUTES'), 'OTEL_RESOURCE_ATTRIBUTES', warnings);
  const serviceName = envString(env, 'OTEL_SERVICE_NAME');
  if (serviceName !== undefined) resourceAttributes[ATTR_SERVICE_NAME] = serviceName;

  // Exporters and the on/off decision.
  const exporters: ('otlp' | 'console')[] = [];
  let why: string;
  const rawExporters = envString(env, 'OTEL_TRACES_EXPORTER');
  const names = (rawExporters ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  for (const name of names) {
    if (name === 'otlp' || name === 'console') {
      if (!exporters.includes(name)) exporters.push(name);
    } else if (name !== 'none') {
      warnings.push(`OTEL_TRACES_EXPORTER: exporter ${JSON.stringify(name)} is not supported (use otlp, console or none)`);
    }
  }
  if (names.includes('none')) exporters.length = 0;

  let enabled: boolean;
  if ((envString(env, 'OTEL_SDK_DISABLED') ?? '').toLowerCase() === 'true') {
    enabled = false;
    exporters.length = 0;
    why = 'OTEL_SDK_DISABLED=true';
  } else if (samplerName === 'always_off') {
    enabled = false;
    exporters.length = 0;
    why = 'OTEL_TRACES_SAMPLER=always_off';
  } else if (rawExporters !== undefined) {
    enabled = exporters.length > 0 || hasInjectedProcessors;
    why = `OTEL_TRACES_EXPORTER=${rawExporters}`;
  } else if (tracesEndpoint !== undefined || genericEndpoint !== undefined) {
    exporters.push('otlp');
    enabled = true;
    why = `${tracesEndpoint !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT'} is set`;
  } else {
    enabled = hasInjectedProcessors;
    why = 'neither OTEL_TRACES_EXPORTER nor an OTLP endpoint is set';
  }
  if (hasInjectedProcessors && enabled) why += ' (plus span processors passed in code)';

  return {
    enabled,
    why,
    exporters,
    protocol,
    endpoint,
    headers,
    timeoutMillis,
    sampler: { name: samplerName, ratio },
    batch,
    resourceAttributes,
    warnings,
  };
}

function createSampler(s: TracingSettings['sampler']): Sampler {
  switch (s.name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(s.ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(s.ratio) });
  }
}

type ExporterCtor = new (config: { url: string; headers: Record<string, string>; timeoutMillis: number }) => SpanExporter;

/**
 * The OTLP/HTTP protobuf exporter lives in `@opentelemetry/exporter-trace-otlp-proto`, which is
 * installed with `@opentelemetry/sdk-node` but not (yet) a direct dependency of this project, so it
 * is resolved at run time; when absent, JSON over HTTP is used instead (every OTLP/HTTP receiver
 * accepts both encodings on the same endpoint) and a warning says so.
 */
function loadProtobufExporter(): ExporterCtor | undefined {
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@opentelemetry/exporter-trace-otlp-proto') as { OTLPTraceExporter?: ExporterCtor };
    return mod.OTLPTraceExporter;
  } catch {
    return undefined;
  }
}

function createOtlpExporter(settings: TracingSettings, warnings: string[]): SpanExporter {
  const config = { url: settings.endpoint, headers: { ...settings.headers }, timeoutMillis: settings.timeoutMillis };
  switch (settings.protocol) {
    case 'grpc':
      // gRPC metadata and TLS files are read by the exporter from process.env (OTEL_EXPORTER_OTLP_*
      // HEADERS / CERTIFICATE / CLIENT_KEY / CLIENT_CERTIFICATE / INSECURE).
      return new OtlpGrpcExporter({ url: config.url, timeoutMillis: config.timeoutMillis });
    case 'http/json':
      return new OtlpHttpJsonExporter(config);
    case 'http/protobuf': {
      const Proto = loadProtobufExporter();
      if (Proto !== undefined) return new Proto(config);
      warnings.push('@opentelemetry/exporter-trace-otlp-proto is not installed; exporting OTLP/HTTP as JSON instead of protobuf');
      return new OtlpHttpJsonExporter(config);
    }
  }
}

/** Reports failed export batches (the SDK itself only tells OpenTelemetry's global diag logger). */
class ReportingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly onExportError: (err: Error) => void,
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        try {
          this.onExportError(result.error ?? new Error('span export failed'));
        } catch {
          // A reporting callback must not break the export pipeline.
        }
      }
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

// ---------------------------------------------------------------------------------------------
// startTracing
// ---------------------------------------------------------------------------------------------

export interface StartTracingOptions {
  /** The environment to read `OTEL_*` variables from; normally `process.env`. */
  readonly env: Env;
  /** `service.name` unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise. */
  readonly serviceName: string;
  readonly serviceVersion?: string;
  /** Extra processors (tests pass a SimpleSpanProcessor over an InMemorySpanExporter). */
  readonly spanProcessors?: readonly SpanProcessor[];
  /** Called with the error of every failed export batch (log it; it is never thrown). */
  readonly onExportError?: (err: Error) => void;
}

export interface Tracing {
  /** Whether spans are produced at all. */
  readonly enabled: boolean;
  /** An `@opentelemetry/api` tracer (a no-op one when disabled) for modules that start spans. */
  readonly tracer: Tracer;
  /** The per-Check facade; `NOOP_CHECK_TRACER` when disabled. */
  readonly checks: CheckTracer;
  /** What was decided from the environment, including warnings to log. */
  readonly settings: TracingSettings;
  /**
   * Records a finished discovery/JWKS fetch as a `keys.fetch` span (wire it to the key store's
   * `onFetch`). A fetch that a check's phase was waiting for becomes a child of that phase; a
   * background refresh becomes a root span. The span covers the last `ms` milliseconds.
   */
  recordKeyFetch(kind: string, result: string, ms: number): void;
  /** Exports what is buffered. */
  forceFlush(): Promise<void>;
  /** Flushes and stops the exporters. Idempotent; never rejects. */
  shutdown(): Promise<void>;
}

/**
 * A tracer that never records, without touching the global provider: every span it hands out is
 * the shared invalid, non-recording span.
 */
function createNoopTracer(): Tracer {
  const span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
  return {
    startSpan: () => span,
    startActiveSpan: ((_name: string, ...args: unknown[]) => {
      const fn = args[args.length - 1] as (s: Span) => unknown;
      return fn(span);
    }) as Tracer['startActiveSpan'],
  };
}

const NOOP_TRACER: Tracer = createNoopTracer();

/**
 * Starts tracing according to the `OTEL_*` variables in `env` (see `resolveTracingSettings`).
 * Registers nothing globally. Call once in the composition root and `shutdown()` on exit.
 */
export function startTracing(options: StartTracingOptions): Tracing {
  const injected = options.spanProcessors ?? [];
  const settings = resolveTracingSettings(options.env, injected.length > 0);
  if (!settings.enabled) {
    return {
      enabled: false,
      tracer: NOOP_TRACER,
      checks: NOOP_CHECK_TRACER,
      settings,
      recordKeyFetch: () => undefined,
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
  }

  const warnings = [...settings.warnings];
  const processors: SpanProcessor[] = [];
  for (const name of settings.exporters) {
    let exporter: SpanExporter = name === 'otlp' ? createOtlpExporter(settings, warnings) : new ConsoleSpanExporter();
    if (options.onExportError !== undefined) exporter = new ReportingExporter(exporter, options.onExportError);
    processors.push(new BatchSpanProcessor(exporter, { ...settings.batch }));
  }
  processors.push(...injected);

  const resource = defaultResource().merge(
    resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      ...(options.serviceVersion !== undefined ? { [ATTR_SERVICE_VERSION]: options.serviceVersion } : {}),
      ...settings.resourceAttributes,
    }),
  );
  const provider = new BasicTracerProvider({ resource, sampler: createSampler(settings.sampler), spanProcessors: processors });
  const tracer = provider.getTracer('entra-authz');
  // Created only when tracing is on: AsyncLocalStorage has a (small) cost on every promise.
  const phaseContext = new AsyncLocalStorage<Context>();

  let shutdownPromise: Promise<void> | undefined;
  return {
    enabled: true,
    tracer,
    checks: createCheckTracer(tracer, phaseContext),
    recordKeyFetch(kind, result, ms) {
      try {
        const end = performance.timeOrigin + performance.now();
        const span = tracer.startSpan(
          PHASE.keyFetch,
          {
            kind: SpanKind.CLIENT,
            startTime: end - Math.max(0, Number.isFinite(ms) ? ms : 0),
            attributes: { [ATTR.keyFetchKind]: kind, [ATTR.keyFetchResult]: result },
          },
          phaseContext.getStore() ?? ROOT_CONTEXT,
        );
        if (result !== 'ok' && result !== 'success') span.setStatus({ code: SpanStatusCode.ERROR });
        span.end(end);
      } catch {
        // Never let tracing disturb the key store.
      }
    },
    settings: { ...settings, warnings },
    forceFlush: () => provider.forceFlush().catch(() => undefined),
    shutdown: () => (shutdownPromise ??= provider.shutdown().catch(() => undefined)),
  };
}
