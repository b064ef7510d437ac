import { afterEach, describe, expect, it, vi } from 'vitest';
import { ROOT_CONTEXT, propagation, trace, type Context } from '@opentelemetry/api';
import { parentContextFrom, propagatorFromEnv } from '../../src/telemetry/propagation.js';
import { otelEnv } from './otel-env.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;
const B3_TRACE = '80f198ee56343ba864fe8b2a57d3eff7';
const B3_SPAN = 'e457b5a2e4d86bd1';
const ENVOY_TRACE = '1'.repeat(32);
const ENVOY_SPAN = '2'.repeat(16);

const headers = (entries: Record<string, string>): Map<string, string[]> => new Map(Object.entries(entries).map(([k, v]) => [k, [v]]));
const parentOf = (ctx: Context) => trace.getSpanContext(ctx);

afterEach(() => {
  vi.unstubAllEnvs();
});

function parent(h: Record<string, string>, metadata: Record<string, string | Uint8Array> = {}, env: Record<string, string> = {}): Context {
  otelEnv(env);
  const warnings: string[] = [];
  const ctx = parentContextFrom(propagatorFromEnv((m) => warnings.push(m)), headers(h), metadata);
  expect(warnings).toEqual([]);
  return ctx;
}

describe('the parent of a Check span, by default (W3C trace context and baggage, and B3 read too)', () => {
  it('takes the parent from a W3C traceparent header, with its tracestate', () => {
    const ctx = parent({ traceparent: TRACEPARENT, tracestate: 'vendor=abc,other=x' });
    expect(parentOf(ctx)).toMatchObject({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 1, isRemote: true });
    expect(parentOf(ctx)?.traceState?.get('vendor')).toBe('abc');
  });

  it('reads the baggage header', () => {
    const ctx = parent({ traceparent: TRACEPARENT, baggage: 'team=payments' });
    expect(propagation.getBaggage(ctx)?.getEntry('team')?.value).toBe('payments');
  });

  it('takes the parent from a single b3 header and from x-b3-* headers, padding a 64-bit trace id', () => {
    expect(parentOf(parent({ b3: `${B3_TRACE}-${B3_SPAN}-1` }))).toMatchObject({ traceId: B3_TRACE, spanId: B3_SPAN, traceFlags: 1 });
    const multi = parent({ 'x-b3-traceid': '463ac35c9f6413ad', 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '1' });
    expect(parentOf(multi)).toMatchObject({ traceId: '0000000000000000463ac35c9f6413ad', spanId: 'a2fb4a1d1a96d312' });
  });

  it('prefers traceparent over B3 when a request carries both', () => {
    expect(parentOf(parent({ b3: `${B3_TRACE}-${B3_SPAN}-1`, traceparent: TRACEPARENT }))?.traceId).toBe(TRACE_ID);
  });

  it.each([
    ['a truncated traceparent', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b71' }],
    ['an all-zero trace id', { traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' }],
    ['version ff', { traceparent: `ff-${TRACE_ID}-${PARENT_ID}-01` }],
    ['repeated traceparents joined by Envoy', { traceparent: `${TRACEPARENT},${TRACEPARENT}` }],
    ['binary junk', { traceparent: '\u0000\u00ff\n\r' }],
    ['a malformed b3', { b3: 'not-a-b3-header' }],
    ['x-b3 ids that are not hex', { 'x-b3-traceid': 'zzzz', 'x-b3-spanid': 'yyyy' }],
  ])('starts a new trace, without error, from %s', (_label, h) => {
    expect(parent(h)).toBe(ROOT_CONTEXT);
  });
});

describe("Envoy's own ext_authz span in the gRPC metadata", () => {
  const envoyParent = `00-${ENVOY_TRACE}-${ENVOY_SPAN}-01`;

  it("wins over the forwarded request's traceparent", () => {
    expect(parentOf(parent({ traceparent: TRACEPARENT }, { traceparent: envoyParent }))).toMatchObject({ traceId: ENVOY_TRACE, spanId: ENVOY_SPAN });
  });

  it('gives way to the request headers when it is absent, malformed or binary', () => {
    expect(parentOf(parent({ traceparent: TRACEPARENT }, {}))?.spanId).toBe(PARENT_ID);
    expect(parentOf(parent({ traceparent: TRACEPARENT }, { traceparent: 'garbage' }))?.spanId).toBe(PARENT_ID);
    expect(parentOf(parent({ traceparent: TRACEPARENT }, { traceparent: new Uint8Array([1, 2]) }))?.spanId).toBe(PARENT_ID);
    expect(parentOf(parent({}, { traceparent: envoyParent }))?.spanId).toBe(ENVOY_SPAN);
  });

  it('is read in B3 too, when Envoy traces with Zipkin', () => {
    const ctx = parent({ traceparent: TRACEPARENT }, { 'x-b3-traceid': B3_TRACE, 'x-b3-spanid': B3_SPAN, 'x-b3-sampled': '1' });
    expect(parentOf(ctx)).toMatchObject({ traceId: B3_TRACE, spanId: B3_SPAN });
  });
});

describe('OTEL_PROPAGATORS', () => {
  it('b3 reads B3 and ignores traceparent', () => {
    const both = { traceparent: TRACEPARENT, b3: `${B3_TRACE}-${B3_SPAN}-1` };
    expect(parentOf(parent(both, {}, { OTEL_PROPAGATORS: 'b3' }))?.traceId).toBe(B3_TRACE);
    expect(parent({ traceparent: TRACEPARENT }, {}, { OTEL_PROPAGATORS: 'b3' })).toBe(ROOT_CONTEXT);
  });

  it('b3multi reads x-b3-* headers', () => {
    const ctx = parent({ 'x-b3-traceid': B3_TRACE, 'x-b3-spanid': B3_SPAN, 'x-b3-sampled': '1' }, {}, { OTEL_PROPAGATORS: 'b3multi' });
    expect(parentOf(ctx)?.traceId).toBe(B3_TRACE);
  });

  it('tracecontext alone no longer reads B3', () => {
    expect(parent({ b3: `${B3_TRACE}-${B3_SPAN}-1` }, {}, { OTEL_PROPAGATORS: 'tracecontext' })).toBe(ROOT_CONTEXT);
  });

  it('lets the format listed last win when a request carries several', () => {
    const both = { traceparent: TRACEPARENT, b3: `${B3_TRACE}-${B3_SPAN}-1` };
    expect(parentOf(parent(both, {}, { OTEL_PROPAGATORS: 'tracecontext,b3' }))?.traceId).toBe(B3_TRACE);
    expect(parentOf(parent(both, {}, { OTEL_PROPAGATORS: 'b3,tracecontext' }))?.traceId).toBe(TRACE_ID);
  });

  it('none starts every check in a new trace', () => {
    expect(parent({ traceparent: TRACEPARENT }, {}, { OTEL_PROPAGATORS: 'none' })).toBe(ROOT_CONTEXT);
  });

  it('reports names it does not know and uses the others', () => {
    otelEnv({ OTEL_PROPAGATORS: 'xray, tracecontext' });
    const warnings: string[] = [];
    const ctx = parentContextFrom(propagatorFromEnv((m) => warnings.push(m)), headers({ traceparent: TRACEPARENT }));
    expect(parentOf(ctx)?.traceId).toBe(TRACE_ID);
    expect(warnings).toEqual([expect.stringMatching(/"xray" is not supported/)]);
  });
});
