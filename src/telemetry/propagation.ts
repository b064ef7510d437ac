import { ROOT_CONTEXT, trace, type Context, type TextMapGetter, type TextMapPropagator } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator, getStringListFromEnv } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';

/** gRPC call metadata as `Metadata.getMap()` returns it; binary (`-bin`) values are ignored. */
export type GrpcMetadataMap = Readonly<Record<string, string | Uint8Array | readonly string[] | undefined>>;

/** Lower-case header name → values, as in `RequestView.headers`. */
export type HeaderCarrier = ReadonlyMap<string, readonly string[]>;

const PROPAGATORS: Readonly<Record<string, () => TextMapPropagator>> = {
  tracecontext: () => new W3CTraceContextPropagator(),
  baggage: () => new W3CBaggagePropagator(),
  // Both B3 encodings extract single `b3` and multi `x-b3-*` alike; they differ only in injection.
  b3: () => new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER }),
  b3multi: () => new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }),
};

/**
 * The propagators named in `OTEL_PROPAGATORS` (tracecontext, baggage, b3, b3multi, none). Unset:
 * the specification's default, tracecontext and baggage, plus reading B3 for meshes that still
 * speak Zipkin. When a request carries several formats, the one listed last wins (the SDK's
 * `CompositePropagator` order), so by default W3C wins over B3.
 */
export function propagatorFromEnv(warn: (message: string) => void): TextMapPropagator {
  const names = getStringListFromEnv('OTEL_PROPAGATORS')?.map((n) => n.toLowerCase()) ?? ['b3', 'tracecontext', 'baggage'];
  if (names.includes('none')) return new CompositePropagator();
  const propagators: TextMapPropagator[] = [];
  for (const name of new Set(names)) {
    const make = Object.hasOwn(PROPAGATORS, name) ? PROPAGATORS[name] : undefined;
    if (make) propagators.push(make());
    else warn(`OTEL_PROPAGATORS: ${JSON.stringify(name)} is not supported (use tracecontext, baggage, b3, b3multi or none)`);
  }
  return new CompositePropagator({ propagators });
}

const headerGetter: TextMapGetter<HeaderCarrier> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => {
    const values = carrier.get(key);
    return values === undefined || values.length === 0 ? undefined : values.length === 1 ? values[0] : [...values];
  },
};

const metadataGetter: TextMapGetter<GrpcMetadataMap> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = Object.hasOwn(carrier, key) ? carrier[key] : undefined;
    if (typeof value === 'string') return value;
    if (!Array.isArray(value)) return undefined;
    const strings = value.filter((v): v is string => typeof v === 'string');
    return strings.length === 0 ? undefined : strings;
  },
};

function extract<C>(propagator: TextMapPropagator, carrier: C, getter: TextMapGetter<C>): Context | undefined {
  try {
    const ctx = propagator.extract(ROOT_CONTEXT, carrier, getter);
    return trace.getSpanContext(ctx) === undefined ? undefined : ctx;
  } catch {
    // A propagator choking on hostile input must never fail a check: start a new trace instead.
    return undefined;
  }
}

/**
 * The parent of a Check span. First the gRPC call's metadata: when Envoy traces, that is its own
 * ext_authz span, itself a child of the user's request. Else the user request's headers as Envoy
 * forwarded them. Else `ROOT_CONTEXT` (a new trace); malformed values count as absent. Never throws.
 */
export function parentContextFrom(propagator: TextMapPropagator, headers: HeaderCarrier, grpcMetadata: GrpcMetadataMap = {}): Context {
  return extract(propagator, grpcMetadata, metadataGetter) ?? extract(propagator, headers, headerGetter) ?? ROOT_CONTEXT;
}
