import { AsyncLocalStorage } from 'node:async_hooks';
import { ROOT_CONTEXT, trace, type Context, type Tracer } from '@opentelemetry/api';
import { ExportResultCode, getBooleanFromEnv, getStringFromEnv, getStringListFromEnv } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpGrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { NOOP_CHECK_TRACER, createCheckTracer, type CheckTracer } from './check-span.js';
import { traceGraphCalls, traceKeyFetches } from './key-fetch-span.js';
import { propagatorFromEnv } from './propagation.js';

export { NOOP_CHECK_TRACER, type CheckSpan, type CheckTracer, type HttpCheckRequest } from './check-span.js';
export type { GrpcMetadataMap, HeaderCarrier } from './propagation.js';
export { ATTR, PHASE, SPAN_CHECK } from './trace-names.js';

/**
 * Tracing through the OpenTelemetry SDK, which reads its own `OTEL_*` variables: the sampler
 * (`OTEL_TRACES_SAMPLER[_ARG]`), the batch processor (`OTEL_BSP_*`), the resource
 * (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`) and the OTLP exporters (`OTEL_EXPORTER_OTLP_*`).
 * This module adds only what the SDK cannot know: tracing is off unless an exporter or an OTLP
 * endpoint is set, and the exporters and propagators that `OTEL_TRACES_EXPORTER`,
 * `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` and `OTEL_PROPAGATORS` name, read as the OpenTelemetry
 * specification defines them. The tracer provider is returned, never registered globally.
 */

type Fetch = typeof globalThis.fetch;

/** The project's policy: off unless asked for, so a plain deployment never tries a localhost collector. */
function tracingRequested(): boolean {
  if (getBooleanFromEnv('OTEL_SDK_DISABLED')) return false;
  const exporters = getStringListFromEnv('OTEL_TRACES_EXPORTER');
  if (exporters !== undefined) return !exporters.includes('none');
  return getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined || getStringFromEnv('OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined;
}

/** One processor per exporter named in `OTEL_TRACES_EXPORTER` (default `otlp`). */
function processorsFromEnv(warn: (message: string) => void): SpanProcessor[] {
  const processors: SpanProcessor[] = [];
  const onExportError = (err: Error): void => warn(`span export failed: ${err.message}`);
  for (const name of new Set(getStringListFromEnv('OTEL_TRACES_EXPORTER') ?? ['otlp'])) {
    if (name === 'otlp') processors.push(new BatchSpanProcessor(reportingFailures(otlpExporterFromEnv(warn), onExportError)));
    else if (name === 'console') processors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
    else warn(`OTEL_TRACES_EXPORTER: ${JSON.stringify(name)} is not supported (use otlp, console or none)`);
  }
  return processors;
}

/** The OTLP exporter for the configured protocol; it reads its endpoint, headers, TLS and timeout itself. */
function otlpExporterFromEnv(warn: (message: string) => void): SpanExporter {
  const protocol = getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  if (protocol === 'grpc') return new OtlpGrpcExporter();
  if (protocol === 'http/json') return new OtlpJsonExporter();
  if (protocol !== 'http/protobuf') warn(`OTLP protocol ${JSON.stringify(protocol)} is not supported; using http/protobuf`);
  return new OtlpProtobufExporter();
}

/** The SDK tells only its global diagnostic logger about failed batches; tell the caller. */
function reportingFailures(exporter: SpanExporter, onExportError: (err: Error) => void): SpanExporter {
  return {
    export: (spans, done) =>
      exporter.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) onExportError(result.error ?? new Error('span export failed'));
        done(result);
      }),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

export interface StartTracingOptions {
  /** `service.name` unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise. */
  readonly serviceName: string;
  readonly serviceVersion?: string;
  /** Extra processors, which also turn tracing on (tests pass an in-memory exporter). */
  readonly spanProcessors?: readonly SpanProcessor[];
  /** Ignored `OTEL_*` values and failed export batches, one message each; must not throw. */
  readonly onWarning?: (message: string) => void;
}

export interface Tracing {
  /** Whether spans are produced at all. */
  readonly enabled: boolean;
  /** The per-Check facade; `NOOP_CHECK_TRACER` when disabled. */
  readonly checks: CheckTracer;
  /** `fetch` for the key store: each discovery/JWKS request a `keys.fetch` span (unchanged when off). */
  traceKeyFetches(fetch: Fetch): Fetch;
  /** `fetch` for the group resolver: each Microsoft Graph call a `graph.call` span (unchanged when off). */
  traceGraphCalls(fetch: Fetch): Fetch;
  /** Exports what is buffered. */
  forceFlush(): Promise<void>;
  /** Flushes and stops the exporters. Idempotent; never rejects. */
  shutdown(): Promise<void>;
}

const TRACING_OFF: Tracing = Object.freeze({
  enabled: false,
  checks: NOOP_CHECK_TRACER,
  traceKeyFetches: (fetch: Fetch) => fetch,
  traceGraphCalls: (fetch: Fetch) => fetch,
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
});

/** Starts tracing per the environment. Registers nothing globally; call `shutdown()` on exit. */
export function startTracing(options: StartTracingOptions): Tracing {
  const injected = options.spanProcessors ?? [];
  if (getBooleanFromEnv('OTEL_SDK_DISABLED') || (!tracingRequested() && injected.length === 0)) return TRACING_OFF;
  const warn = options.onWarning ?? ((): void => undefined);
  const processors = [...(tracingRequested() ? processorsFromEnv(warn) : []), ...injected];
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName, [ATTR_SERVICE_VERSION]: options.serviceVersion }))
    .merge(detectResources({ detectors: [envDetector] }));
  // The sampler comes from OTEL_TRACES_SAMPLER[_ARG], read by the provider itself.
  const provider = new BasicTracerProvider({ resource, spanProcessors: processors });
  const tracer: Tracer = provider.getTracer('entra-authz');
  // Only when tracing is on: AsyncLocalStorage costs a little on every promise.
  const phaseContext = new AsyncLocalStorage<Context>();
  const fetchParent = (): Context => {
    const ctx = phaseContext.getStore();
    // A timer armed during a check keeps that context: a refresh it fires after the phase ended is a root span.
    return ctx !== undefined && trace.getSpan(ctx)?.isRecording() === true ? ctx : ROOT_CONTEXT;
  };
  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    checks: createCheckTracer(tracer, propagatorFromEnv(warn), phaseContext),
    traceKeyFetches: (fetch) => traceKeyFetches(fetch, tracer, fetchParent),
    traceGraphCalls: (fetch) => traceGraphCalls(fetch, tracer, fetchParent),
    forceFlush: () => provider.forceFlush().catch(() => undefined),
    shutdown: () => (stopped ??= provider.shutdown().catch(() => undefined)),
  };
}
