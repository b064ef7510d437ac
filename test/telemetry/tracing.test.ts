import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import {
  ATTR,
  NOOP_CHECK_TRACER,
  PHASE,
  SPAN_CHECK,
  parentContextFrom,
  resolveTracingSettings,
  startTracing,
  traceHeadersOf,
  type CheckSpan,
  type Tracing,
} from '../../src/telemetry/tracing.js';
import type { PhaseTracer } from '../../src/core/outcome.js';
import { allow, deny, APP_ID, TENANT } from './fixtures.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

const headers = (entries: Record<string, string>): Map<string, string[]> =>
  new Map(Object.entries(entries).map(([k, v]) => [k, [v]]));

const started: Tracing[] = [];
function memoryTracing(env: Record<string, string> = {}): { tracing: Tracing; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  const tracing = startTracing({ env, serviceName: 'entra-authz-test', spanProcessors: [new SimpleSpanProcessor(exporter)] });
  started.push(tracing);
  return { tracing, exporter };
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.shutdown()));
});

const byName = (spans: ReadableSpan[], name: string): ReadableSpan => {
  const span = spans.find((s) => s.name === name);
  if (!span) throw new Error(`no span named ${name}; have ${spans.map((s) => s.name).join(', ')}`);
  return span;
};

describe('tracing settings from OTEL_* variables', () => {
  it('is off when neither an exporter nor an OTLP endpoint is configured', () => {
    const s = resolveTracingSettings({});
    expect(s.enabled).toBe(false);
    expect(s.exporters).toEqual([]);
  });

  it('turns on OTLP over HTTP/protobuf when only OTEL_EXPORTER_OTLP_ENDPOINT is set, appending /v1/traces', () => {
    const s = resolveTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' });
    expect(s).toMatchObject({ enabled: true, exporters: ['otlp'], protocol: 'http/protobuf', endpoint: 'http://collector:4318/v1/traces' });
  });

  it('uses the traces-specific endpoint as given', () => {
    const s = resolveTracingSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://ignored:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://collector.example/custom/traces',
    });
    expect(s.endpoint).toBe('https://collector.example/custom/traces');
  });

  it('uses the endpoint without a path for gRPC and defaults to localhost:4317', () => {
    expect(resolveTracingSettings({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toMatchObject({
      enabled: true,
      protocol: 'grpc',
      endpoint: 'http://localhost:4317',
    });
    expect(
      resolveTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }).endpoint,
    ).toBe('http://collector:4317');
  });

  it('is off when OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none or the sampler is always_off, whatever else is set', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(resolveTracingSettings({ ...endpoint, OTEL_SDK_DISABLED: 'TRUE' }).enabled).toBe(false);
    expect(resolveTracingSettings({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }).enabled).toBe(false);
    expect(resolveTracingSettings({ ...endpoint, OTEL_TRACES_SAMPLER: 'always_off' }).enabled).toBe(false);
    expect(resolveTracingSettings({ OTEL_SDK_DISABLED: 'true' }, true).enabled).toBe(false);
  });

  it('reads the sampler, headers, timeout and batch settings, and warns about values it cannot use', () => {
    const s = resolveTracingSettings({
      OTEL_TRACES_EXPORTER: 'otlp,zipkin',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_EXPORTER_OTLP_HEADERS: 'api-key=abc%20def,x-team=authz',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-team=platform',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
      OTEL_BSP_SCHEDULE_DELAY: 'soon',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,service.name=from-attributes',
      OTEL_SERVICE_NAME: 'authz-eu',
    });
    expect(s.exporters).toEqual(['otlp']);
    expect(s.sampler).toEqual({ name: 'parentbased_traceidratio', ratio: 0.25 });
    expect(s.headers).toEqual({ 'api-key': 'abc def', 'x-team': 'platform' });
    expect(s.timeoutMillis).toBe(2500);
    expect(s.batch.scheduledDelayMillis).toBe(5000);
    expect(s.resourceAttributes).toEqual({ 'deployment.environment': 'prod', 'service.name': 'authz-eu' });
    expect(s.warnings.join('\n')).toMatch(/zipkin/);
    expect(s.warnings.join('\n')).toMatch(/OTEL_BSP_SCHEDULE_DELAY/);
  });

  it('falls back to the default sampler on an unknown name and to ratio 1 on a bad argument', () => {
    expect(resolveTracingSettings({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }).sampler.name).toBe('parentbased_always_on');
    const s = resolveTracingSettings({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' });
    expect(s.sampler).toEqual({ name: 'traceidratio', ratio: 1 });
    expect(s.warnings).toHaveLength(1);
  });
});

describe('parent context extraction', () => {
  const parentOf = (ctx: Context) => trace.getSpanContext(ctx);

  it('takes the parent from a W3C traceparent header, with its tracestate', () => {
    const ctx = parentContextFrom(headers({ traceparent: TRACEPARENT, tracestate: 'vendor=abc,other=x' }), {});
    expect(parentOf(ctx)).toMatchObject({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 1, isRemote: true });
    expect(parentOf(ctx)?.traceState?.get('vendor')).toBe('abc');
  });

  it('takes the parent from a single b3 header', () => {
    const ctx = parentContextFrom(headers({ b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }), {});
    expect(parentOf(ctx)).toMatchObject({ traceId: '80f198ee56343ba864fe8b2a57d3eff7', spanId: 'e457b5a2e4d86bd1', traceFlags: 1 });
  });

  it('takes the parent from multi-header x-b3-* headers, padding a 64-bit trace id', () => {
    const ctx = parentContextFrom(
      headers({ 'x-b3-traceid': '463ac35c9f6413ad', 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '1' }),
      {},
    );
    expect(parentOf(ctx)).toMatchObject({ traceId: '0000000000000000463ac35c9f6413ad', spanId: 'a2fb4a1d1a96d312', traceFlags: 1 });
  });

  it('prefers traceparent over B3 when a request carries both', () => {
    const ctx = parentContextFrom(headers({ traceparent: TRACEPARENT, b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }), {});
    expect(parentOf(ctx)?.traceId).toBe(TRACE_ID);
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
    expect(() => parentContextFrom(headers(h), {})).not.toThrow();
    expect(parentContextFrom(headers(h), {})).toBe(ROOT_CONTEXT);
  });

  it("falls back to the gRPC call's metadata when the request carries no usable trace context", () => {
    const metaParent = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
    expect(parentOf(parentContextFrom(headers({}), { traceparent: metaParent }))?.traceId).toBe('1'.repeat(32));
    expect(parentOf(parentContextFrom(headers({ traceparent: 'garbage' }), { traceparent: metaParent }))?.traceId).toBe('1'.repeat(32));
    // The user's request wins over the gRPC call's own context.
    expect(parentOf(parentContextFrom(headers({ traceparent: TRACEPARENT }), { traceparent: metaParent }))?.traceId).toBe(TRACE_ID);
    // Binary metadata values are ignored.
    expect(parentContextFrom(headers({}), { traceparent: new Uint8Array([1, 2]) })).toBe(ROOT_CONTEXT);
  });
});

describe('Check spans', () => {
  it('parents the Check span to the traceparent of the user request and records the decision', async () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }), {});
    expect(span.traceId).toBe(TRACE_ID);
    expect(span.spanId).toMatch(/^[0-9a-f]{16}$/);
    span.end(allow(), { cacheHit: true, dryRun: false });

    const [check] = exporter.getFinishedSpans();
    expect(check?.name).toBe(SPAN_CHECK);
    expect(check?.kind).toBe(SpanKind.SERVER);
    expect(check?.spanContext().traceId).toBe(TRACE_ID);
    expect(check?.spanContext().spanId).toBe(span.spanId);
    expect(check?.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(check?.attributes).toEqual({
      'rpc.system': 'grpc',
      'rpc.service': 'envoy.service.auth.v3.Authorization',
      'rpc.method': 'Check',
      [ATTR.decisionId]: 'dec-allow-1',
      [ATTR.decision]: 'allow',
      [ATTR.reason]: 'allowed',
      [ATTR.rule]: 'orders-read',
      [ATTR.tenantId]: TENANT,
      [ATTR.appId]: APP_ID,
      [ATTR.cacheHit]: true,
      [ATTR.dryRun]: false,
    });
    expect(check?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('parents the Check span to a B3 context', () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(headers({ b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }));
    span.end(deny());
    const [check] = exporter.getFinishedSpans();
    expect(check?.spanContext().traceId).toBe('80f198ee56343ba864fe8b2a57d3eff7');
    expect(check?.parentSpanContext?.spanId).toBe('e457b5a2e4d86bd1');
    expect(check?.attributes[ATTR.decision]).toBe('deny');
    expect(check?.attributes[ATTR.reason]).toBe('missing_role');
    // A deny is a normal outcome, not a span error.
    expect(check?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('starts a new trace when the traceparent is malformed', () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(headers({ traceparent: '00-nothex-nothex-01' }));
    span.end(allow());
    const [check] = exporter.getFinishedSpans();
    expect(check?.parentSpanContext).toBeUndefined();
    expect(check?.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(check?.spanContext().traceId).not.toBe(TRACE_ID);
  });

  it('makes phases child spans of the Check span and hands them their context', async () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheck(parentContextFrom(headers({ traceparent: TRACEPARENT }), {}));
    const result = await span.phase(PHASE.verifyToken, async (ctx) => {
      // A module given the phase's context (e.g. the key store) parents its own span to it.
      const fetch = tracing.tracer.startSpan(PHASE.keyFetch, { attributes: { [ATTR.keyFetchKind]: 'jwks' } }, ctx);
      fetch.end();
      return 'verified';
    });
    expect(result).toBe('verified');
    await span.phase(PHASE.evaluateRules, async () => undefined, { [ATTR.rule]: 'orders-read' });
    span.end(allow());

    const spans = exporter.getFinishedSpans();
    const check = byName(spans, SPAN_CHECK);
    const verify = byName(spans, PHASE.verifyToken);
    const keyFetch = byName(spans, PHASE.keyFetch);
    const evaluate = byName(spans, PHASE.evaluateRules);
    expect(verify.parentSpanContext?.spanId).toBe(check.spanContext().spanId);
    expect(evaluate.parentSpanContext?.spanId).toBe(check.spanContext().spanId);
    expect(keyFetch.parentSpanContext?.spanId).toBe(verify.spanContext().spanId);
    expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(new Set([TRACE_ID]));
    expect(evaluate.attributes[ATTR.rule]).toBe('orders-read');
    expect(keyFetch.attributes[ATTR.keyFetchKind]).toBe('jwks');
  });

  it('parents a key fetch reported from deep inside a phase to that phase, and a background fetch to nothing', async () => {
    const { tracing, exporter } = memoryTracing();
    // Stands for the key store: it knows nothing of tracing and reports fetches through a callback.
    const keyStore = {
      onFetch: (kind: string, result: string, ms: number) => tracing.recordKeyFetch(kind, result, ms),
      async resolveKey(): Promise<string> {
        await new Promise<void>((r) => setImmediate(r));
        this.onFetch('jwks', 'ok', 12);
        return 'key';
      },
    };
    const span = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }));
    await span.phase(PHASE.verifyToken, () => keyStore.resolveKey());
    span.end(allow());
    keyStore.onFetch('discovery', 'error', 5000); // a background refresh that failed

    const spans = exporter.getFinishedSpans();
    const verify = byName(spans, PHASE.verifyToken);
    const [inCheck, background] = spans.filter((s) => s.name === PHASE.keyFetch);
    expect(inCheck?.parentSpanContext?.spanId).toBe(verify.spanContext().spanId);
    expect(inCheck?.spanContext().traceId).toBe(TRACE_ID);
    expect(inCheck?.kind).toBe(SpanKind.CLIENT);
    expect(inCheck?.attributes).toEqual({ [ATTR.keyFetchKind]: 'jwks', [ATTR.keyFetchResult]: 'ok' });
    const [secs, nanos] = inCheck?.duration ?? [0, 0];
    expect(secs * 1e3 + nanos / 1e6).toBeCloseTo(12, 0);
    expect(background?.parentSpanContext).toBeUndefined();
    expect(background?.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('marks a failed phase with the error type only and rethrows the error unchanged', async () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(headers({}));
    class JWKSTimeout extends Error {
      override name = 'JWKSTimeout';
    }
    const boom = new JWKSTimeout('fetch of https://login.example/keys?secret=1 timed out');
    await expect(span.phase(PHASE.keyFetch, () => Promise.reject(boom))).rejects.toBe(boom);
    span.end({ id: 'dec-u', kind: 'unavailable', reason: 'keys_unavailable', rule: undefined, identity: undefined, detail: '' });

    const phase = byName(exporter.getFinishedSpans(), PHASE.keyFetch);
    expect(phase.status.code).toBe(SpanStatusCode.ERROR);
    expect(phase.attributes[ATTR.errorType]).toBe('JWKSTimeout');
    expect(JSON.stringify({ attributes: phase.attributes, status: phase.status, events: phase.events })).not.toContain('secret=1');
    const check = byName(exporter.getFinishedSpans(), SPAN_CHECK);
    expect(check.status).toEqual({ code: SpanStatusCode.ERROR, message: 'keys_unavailable' });
  });

  it('ignores a second end', () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(headers({}));
    span.end(allow());
    span.end(deny());
    expect(exporter.getFinishedSpans()).toHaveLength(1);
    expect(exporter.getFinishedSpans()[0]?.attributes[ATTR.decision]).toBe('allow');
  });

  it('follows an unsampled parent: ids for the audit record, nothing exported, phases still run', async () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(headers({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` }));
    expect(span.recording).toBe(false);
    expect(span.traceId).toBe(TRACE_ID);
    expect(await span.phase(PHASE.verifyToken, async () => 42)).toBe(42);
    span.end(allow());
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});

describe('Check spans from the raw CheckRequest', () => {
  const checkRequest = (http: Record<string, unknown>) => ({ attributes: { request: { http: { method: 'GET', path: '/', ...http } } } });

  it('reads only the trace headers, from the headers map or header_map', () => {
    expect(
      traceHeadersOf(checkRequest({ headers: { traceparent: TRACEPARENT, authorization: 'Bearer x', 'X-B3-Sampled': '1' } })),
    ).toEqual(new Map([['traceparent', [TRACEPARENT]], ['x-b3-sampled', ['1']]]));
    expect(
      traceHeadersOf(
        checkRequest({
          header_map: {
            headers: [
              { key: 'tracestate', value: 'a=1' },
              { key: 'traceparent', raw_value: new Uint8Array(Buffer.from(TRACEPARENT)) },
              { key: 'cookie', value: 'session=1' },
            ],
          },
        }),
      ),
    ).toEqual(new Map([['tracestate', ['a=1']], ['traceparent', [TRACEPARENT]]]));
  });

  it('returns no headers for anything that is not a CheckRequest', () => {
    for (const junk of [undefined, null, 42, 'x', [], { attributes: [] }, checkRequest({ headers: 'nope' })]) {
      expect(traceHeadersOf(junk).size).toBe(0);
    }
    const hostile = { get attributes(): never {
      throw new Error('getter');
    } };
    expect(traceHeadersOf(hostile).size).toBe(0);
  });

  it('parents the Check span to the trace context in the raw request', () => {
    const { tracing, exporter } = memoryTracing();
    tracing.checks.startCheckFromRequest(checkRequest({ headers: { traceparent: TRACEPARENT } }), {}).end(allow());
    expect(exporter.getFinishedSpans()[0]?.parentSpanContext?.spanId).toBe(PARENT_ID);
  });

  it("serves as the decision engine's phase tracer", async () => {
    const { tracing, exporter } = memoryTracing();
    const span: CheckSpan = tracing.checks.startCheckFromRequest({}, {});
    const engineTracer: PhaseTracer = span;
    expect(await engineTracer.phase('token.verify', async () => 'ok')).toBe('ok');
    span.end(allow());
    expect(exporter.getFinishedSpans().map((s) => s.name).sort()).toEqual([SPAN_CHECK, PHASE.verifyToken].sort());
  });

  it('records a dry-run allow with the reason it would have denied with', () => {
    const { tracing, exporter } = memoryTracing();
    tracing.checks
      .startCheckFromRequest({}, {})
      .end(allow({ dryRun: { wouldDeny: 'missing_scope', detail: 'scopes anyOf Orders.Read' } }));
    const attrs = exporter.getFinishedSpans()[0]?.attributes;
    expect(attrs?.[ATTR.decision]).toBe('allow');
    expect(attrs?.[ATTR.dryRun]).toBe(true);
    expect(attrs?.[ATTR.wouldDeny]).toBe('missing_scope');
  });
});

describe('tracing switched off', () => {
  it('hands out one shared no-op span: no ids, no allocation per check, phases just run', async () => {
    const tracing = startTracing({ env: {}, serviceName: 'entra-authz' });
    expect(tracing.enabled).toBe(false);
    expect(tracing.checks).toBe(NOOP_CHECK_TRACER);
    const a = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }), {});
    const b = tracing.checks.startCheck(ROOT_CONTEXT);
    const c = tracing.checks.startCheckFromRequest({ attributes: { request: { http: { headers: { traceparent: TRACEPARENT } } } } });
    expect(a).toBe(b);
    expect(c).toBe(b);
    expect(a.traceId).toBeUndefined();
    expect(a.spanId).toBeUndefined();
    expect(await a.phase(PHASE.evaluateRules, async () => 'ran')).toBe('ran');
    a.end(allow());
    const noop = tracing.tracer.startSpan('x');
    expect(noop.isRecording()).toBe(false);
    expect(() => tracing.recordKeyFetch('jwks', 'ok', 3)).not.toThrow();
    await tracing.shutdown();
  });
});

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

async function otlpReceiver(status = 200): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      received.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? '{}' : '{"code":3,"message":"bad batch"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, received, server };
}

describe('export to a real OTLP/HTTP receiver', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('delivers the Check span and its phases as OTLP/JSON, with the resource and parent links', async () => {
    const receiver = await otlpReceiver();
    servers.push(receiver.server);
    const tracing = startTracing({
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-key=k1',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
      },
      serviceName: 'entra-authz',
      serviceVersion: '9.9.9',
    });
    expect(tracing.enabled).toBe(true);
    const span = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }), {});
    await span.phase(PHASE.verifyToken, async () => undefined);
    span.end(deny(), { cacheHit: false, dryRun: true });
    await tracing.shutdown();

    expect(receiver.received).toHaveLength(1);
    const [post] = receiver.received;
    expect(post?.path).toBe('/v1/traces');
    expect(post?.headers['content-type']).toMatch(/application\/json/);
    expect(post?.headers['x-collector-key']).toBe('k1');
    const body = JSON.parse(post?.body.toString('utf8') ?? '') as {
      resourceSpans: {
        resource: { attributes: { key: string; value: { stringValue?: string } }[] };
        scopeSpans: { spans: { name: string; traceId: string; spanId: string; parentSpanId?: string; attributes: { key: string; value: Record<string, unknown> }[] }[] }[];
      }[];
    };
    const resourceSpans = body.resourceSpans[0];
    const resource = Object.fromEntries(resourceSpans?.resource.attributes.map((a) => [a.key, a.value.stringValue]) ?? []);
    expect(resource).toMatchObject({ 'service.name': 'entra-authz', 'service.version': '9.9.9', 'deployment.environment': 'test' });
    const spans = resourceSpans?.scopeSpans.flatMap((s) => s.spans) ?? [];
    const check = spans.find((s) => s.name === SPAN_CHECK);
    const verify = spans.find((s) => s.name === PHASE.verifyToken);
    expect(check?.traceId).toBe(TRACE_ID);
    expect(check?.parentSpanId).toBe(PARENT_ID);
    expect(verify?.parentSpanId).toBe(check?.spanId);
    const attrs = Object.fromEntries(check?.attributes.map((a) => [a.key, Object.values(a.value)[0]]) ?? []);
    expect(attrs).toMatchObject({ [ATTR.decision]: 'deny', [ATTR.reason]: 'missing_role', [ATTR.dryRun]: true, [ATTR.cacheHit]: false });
  });

  it('sends protobuf by default (http/protobuf), as the OpenTelemetry specification says', async () => {
    const receiver = await otlpReceiver();
    servers.push(receiver.server);
    const tracing = startTracing({ env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces` }, serviceName: 'entra-authz' });
    tracing.checks.startCheckFrom(headers({})).end(allow());
    await tracing.shutdown();
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0]?.headers['content-type']).toBe('application/x-protobuf');
    // The decision id travels inside the protobuf payload.
    expect(receiver.received[0]?.body.includes(Buffer.from('dec-allow-1'))).toBe(true);
  });

  it('reports a rejected export batch through onExportError instead of failing anything', async () => {
    const receiver = await otlpReceiver(400);
    servers.push(receiver.server);
    const errors: Error[] = [];
    const tracing = startTracing({
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
      serviceName: 'entra-authz',
      onExportError: (err) => errors.push(err),
    });
    tracing.checks.startCheckFrom(headers({})).end(allow());
    await expect(tracing.shutdown()).resolves.toBeUndefined();
    expect(receiver.received).toHaveLength(1);
    expect(errors).toHaveLength(1);
  });
});
