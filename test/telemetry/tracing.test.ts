import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Server as GrpcServer, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { PhaseTracer } from '../../src/core/outcome.js';
import { ATTR, NOOP_CHECK_TRACER, PHASE, SPAN_CHECK, startTracing, type Tracing } from '../../src/telemetry/tracing.js';
import { allow, deny, APP_ID, TENANT } from './fixtures.js';
import { otelEnv } from './otel-env.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

const headers = (entries: Record<string, string>): Map<string, string[]> => new Map(Object.entries(entries).map(([k, v]) => [k, [v]]));

const started: Tracing[] = [];
function start(env: Record<string, string>, options: { memory?: boolean; warnings?: string[]; serviceVersion?: string } = {}) {
  otelEnv(env);
  const exporter = new InMemorySpanExporter();
  const tracing = startTracing({
    serviceName: 'entra-authz',
    serviceVersion: options.serviceVersion,
    spanProcessors: options.memory === false ? [] : [new SimpleSpanProcessor(exporter)],
    onWarning: (m) => options.warnings?.push(m),
  });
  started.push(tracing);
  return { tracing, exporter };
}
const memoryTracing = (env: Record<string, string> = {}) => start(env);

afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.shutdown()));
  vi.unstubAllEnvs();
});

const byName = (spans: ReadableSpan[], name: string): ReadableSpan => {
  const span = spans.find((s) => s.name === name);
  if (!span) throw new Error(`no span named ${name}; have ${spans.map((s) => s.name).join(', ')}`);
  return span;
};

describe('when tracing is on', () => {
  it('is off without an exporter or an OTLP endpoint, and with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' };
    const envs: Record<string, string>[] = [{}, { OTEL_TRACES_SAMPLER: 'always_on' }, { ...endpoint, OTEL_TRACES_EXPORTER: 'none' }, { ...endpoint, OTEL_SDK_DISABLED: 'true' }];
    for (const env of envs) {
      const { tracing } = start(env, { memory: false });
      expect(tracing.enabled, JSON.stringify(env)).toBe(false);
      expect(tracing.checks).toBe(NOOP_CHECK_TRACER);
    }
  });

  it('is on with an OTLP endpoint, a traces endpoint, or an exporter named in OTEL_TRACES_EXPORTER', () => {
    const envs: Record<string, string>[] = [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' },
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:1/v1/traces' },
      { OTEL_TRACES_EXPORTER: 'otlp' },
    ];
    for (const env of envs) {
      expect(start(env, { memory: false }).tracing.enabled, JSON.stringify(env)).toBe(true);
    }
  });

  it('hands out one shared no-op span when off: no ids, phases just run, fetch untouched', async () => {
    const { tracing } = start({}, { memory: false });
    const a = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }), () => ({}));
    expect(tracing.checks.startCheckFrom(new Map())).toBe(a);
    expect(a.traceId).toBeUndefined();
    expect(await a.phase(PHASE.evaluateRules, async () => 'ran')).toBe('ran');
    a.end(allow());
    expect(tracing.traceKeyFetches(globalThis.fetch)).toBe(globalThis.fetch);
  });

  it('reports exporter and protocol names it cannot use', () => {
    const warnings: string[] = [];
    start({ OTEL_TRACES_EXPORTER: 'otlp,zipkin', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' }, { memory: false, warnings });
    expect(warnings.join('\n')).toMatch(/"zipkin" is not supported/);
    expect(warnings.join('\n')).toMatch(/"thrift" is not supported/);
  });
});

describe('Check spans', () => {
  it('parents the Check span to the traceparent of the user request and records the decision', () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }), () => ({}));
    expect(span.traceId).toBe(TRACE_ID);
    span.end(allow(), { cacheHit: true, dryRun: false });

    const [check] = exporter.getFinishedSpans();
    expect(check?.name).toBe(SPAN_CHECK);
    expect(check?.kind).toBe(SpanKind.SERVER);
    expect(check?.spanContext().spanId).toBe(span.spanId);
    expect(check?.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(check?.attributes).toEqual({
      'rpc.system': 'grpc',
      'rpc.service': 'envoy.service.auth.v3.Authorization',
      'rpc.method': 'Check',
      'rpc.grpc.status_code': 0,
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

  it("parents the Check span to Envoy's ext_authz span from the gRPC metadata rather than to the request", () => {
    const { tracing, exporter } = memoryTracing();
    const envoySpan = 'e457b5a2e4d86bd1';
    tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }), () => ({ traceparent: `00-${TRACE_ID}-${envoySpan}-01` })).end(deny());
    expect(exporter.getFinishedSpans()[0]?.parentSpanContext?.spanId).toBe(envoySpan);
  });

  it('reads B3 when OTEL_PROPAGATORS=b3', () => {
    const { tracing, exporter } = memoryTracing({ OTEL_PROPAGATORS: 'b3' });
    tracing.checks.startCheckFrom(headers({ b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1', traceparent: TRACEPARENT })).end(deny());
    const [check] = exporter.getFinishedSpans();
    expect(check?.spanContext().traceId).toBe('80f198ee56343ba864fe8b2a57d3eff7');
    expect(check?.parentSpanContext?.spanId).toBe('e457b5a2e4d86bd1');
  });

  it('keeps the RPC status 0 on a deny, which is not a span error', () => {
    const { tracing, exporter } = memoryTracing();
    tracing.checks.startCheckFrom(new Map()).end(deny());
    const [check] = exporter.getFinishedSpans();
    expect(check?.attributes['rpc.grpc.status_code']).toBe(0);
    expect(check?.attributes[ATTR.reason]).toBe('missing_role');
    expect(check?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('leaves rpc.grpc.status_code off a check that came through the HTTP front door', () => {
    const { tracing, exporter } = memoryTracing();
    tracing.checks.startCheckFrom(new Map()).end(deny(), { mode: 'http' });
    const [check] = exporter.getFinishedSpans();
    expect(check?.attributes[ATTR.mode]).toBe('http');
    expect(check?.attributes).not.toHaveProperty('rpc.grpc.status_code');
  });

  it('gives an HTTP-mode check the HTTP server shape: "METHOD route" name, method, route, path and answer status, no rpc.*', () => {
    const { tracing, exporter } = memoryTracing();
    tracing.checks
      .startHttpCheckFrom(headers({ traceparent: TRACEPARENT }), { method: 'POST', route: '/envoy/*', path: '/envoy/orders' })
      .end(deny(), { mode: 'http', httpStatusCode: 403 });
    const [check] = exporter.getFinishedSpans();
    expect(check?.name).toBe('POST /envoy/*');
    expect(check?.kind).toBe(SpanKind.SERVER);
    expect(check?.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(check?.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/envoy/*',
      'url.path': '/envoy/orders',
      'http.response.status_code': 403,
      [ATTR.mode]: 'http',
    });
    expect(Object.keys(check?.attributes ?? {}).filter((k) => k.startsWith('rpc.'))).toEqual([]);
  });

  it('names an HTTP-mode check with an unknown method or endpoint without letting the client choose the span name', () => {
    const { tracing, exporter } = memoryTracing();
    tracing.checks.startHttpCheckFrom(new Map(), { method: 'BREW', route: '/nginx', path: '/nginx' }).end(deny(), { mode: 'http', httpStatusCode: 403 });
    tracing.checks.startHttpCheckFrom(new Map(), { method: 'GET' }).end(deny(), { mode: 'http', httpStatusCode: 400 });
    tracing.checks.startHttpCheckFrom(new Map(), { method: 'X\r\nY' }).end(deny(), { mode: 'http' });
    const [other, unknownEndpoint, garbled] = exporter.getFinishedSpans();
    expect(other?.name).toBe('HTTP /nginx');
    expect(other?.attributes).toMatchObject({ 'http.request.method': '_OTHER', 'http.request.method_original': 'BREW' });
    expect(unknownEndpoint?.name).toBe('GET');
    expect(unknownEndpoint?.attributes).not.toHaveProperty('url.path');
    expect(unknownEndpoint?.attributes).not.toHaveProperty('http.route');
    expect(garbled?.name).toBe('HTTP');
    expect(garbled?.attributes).not.toHaveProperty('http.request.method_original');
  });

  it('makes phases child spans of the Check span and marks a failed one with the error type only', async () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }));
    const engineTracer: PhaseTracer = span;
    expect(await engineTracer.phase('token.verify', async () => 'verified')).toBe('verified');
    class JWKSTimeout extends Error {
      override name = 'JWKSTimeout';
    }
    const boom = new JWKSTimeout('fetch of https://login.example/keys?secret=1 timed out');
    await expect(span.phase(PHASE.evaluateRules, () => Promise.reject(boom))).rejects.toBe(boom);
    span.end({ id: 'dec-u', kind: 'unavailable', reason: 'keys_unavailable', rule: undefined, identity: undefined, detail: '' });

    const spans = exporter.getFinishedSpans();
    const check = byName(spans, SPAN_CHECK);
    for (const name of [PHASE.verifyToken, PHASE.evaluateRules]) {
      expect(byName(spans, name).parentSpanContext?.spanId).toBe(check.spanContext().spanId);
    }
    const failed = byName(spans, PHASE.evaluateRules);
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.attributes[ATTR.errorType]).toBe('JWKSTimeout');
    expect(JSON.stringify({ attributes: failed.attributes, status: failed.status, events: failed.events })).not.toContain('secret=1');
    expect(check.status).toEqual({ code: SpanStatusCode.ERROR, message: 'keys_unavailable' });
    expect(check.attributes['rpc.grpc.status_code']).toBe(14);
  });

  it('records a dry-run allow with the reason it would have denied with, and ignores a second end', () => {
    const { tracing, exporter } = memoryTracing();
    const span = tracing.checks.startCheckFrom(new Map());
    span.end(allow({ dryRun: { wouldDeny: 'missing_scope', detail: 'scopes anyOf Orders.Read' } }));
    span.end(deny());
    expect(exporter.getFinishedSpans()).toHaveLength(1);
    expect(exporter.getFinishedSpans()[0]?.attributes).toMatchObject({ [ATTR.decision]: 'allow', [ATTR.dryRun]: true, [ATTR.wouldDeny]: 'missing_scope' });
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

  it('samples by OTEL_TRACES_SAMPLER, read by the SDK itself', () => {
    const { tracing, exporter } = memoryTracing({ OTEL_TRACES_SAMPLER: 'always_off' });
    const span = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }));
    expect(span.recording).toBe(false);
    span.end(allow());
    expect(exporter.getFinishedSpans()).toEqual([]);
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

type OtlpJson = {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { spans: { name: string; traceId: string; spanId: string; parentSpanId?: string; attributes: { key: string; value: Record<string, unknown> }[] }[] }[];
  }[];
};

describe('export to a real OTLP/HTTP receiver, configured by the SDK from OTEL_* variables', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('delivers the Check span and its phases as OTLP/JSON, with the resource, headers and parent links', async () => {
    const receiver = await otlpReceiver();
    servers.push(receiver.server);
    const { tracing } = start(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-key=k1',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
        OTEL_SERVICE_NAME: 'authz-eu',
      },
      { memory: false, serviceVersion: '9.9.9' },
    );
    expect(tracing.enabled).toBe(true);
    const span = tracing.checks.startCheckFrom(headers({ traceparent: TRACEPARENT }), () => ({}));
    await span.phase(PHASE.verifyToken, async () => undefined);
    span.end(deny(), { cacheHit: false, dryRun: true });
    await tracing.shutdown();

    expect(receiver.received).toHaveLength(1);
    const [post] = receiver.received;
    expect(post?.path).toBe('/v1/traces');
    expect(post?.headers['content-type']).toMatch(/application\/json/);
    expect(post?.headers['x-collector-key']).toBe('k1');
    const body = JSON.parse(post?.body.toString('utf8') ?? '') as OtlpJson;
    const resourceSpans = body.resourceSpans[0];
    const resource = Object.fromEntries(resourceSpans?.resource.attributes.map((a) => [a.key, a.value.stringValue]) ?? []);
    expect(resource).toMatchObject({ 'service.name': 'authz-eu', 'service.version': '9.9.9', 'deployment.environment': 'test' });
    const spans = resourceSpans?.scopeSpans.flatMap((s) => s.spans) ?? [];
    const check = spans.find((s) => s.name === SPAN_CHECK);
    expect(check?.traceId).toBe(TRACE_ID);
    expect(check?.parentSpanId).toBe(PARENT_ID);
    expect(spans.find((s) => s.name === PHASE.verifyToken)?.parentSpanId).toBe(check?.spanId);
    const attrs = Object.fromEntries(check?.attributes.map((a) => [a.key, Object.values(a.value)[0]]) ?? []);
    expect(attrs).toMatchObject({ [ATTR.decision]: 'deny', [ATTR.reason]: 'missing_role', [ATTR.dryRun]: true, [ATTR.cacheHit]: false });
  });

  it('sends protobuf by default (http/protobuf) to the traces endpoint as given', async () => {
    const receiver = await otlpReceiver();
    servers.push(receiver.server);
    const { tracing } = start({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/custom/traces` }, { memory: false });
    tracing.checks.startCheckFrom(new Map()).end(allow());
    await tracing.shutdown();
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0]?.path).toBe('/custom/traces');
    expect(receiver.received[0]?.headers['content-type']).toBe('application/x-protobuf');
    expect(receiver.received[0]?.body.includes(Buffer.from('dec-allow-1'))).toBe(true);
  });

  it('exports over gRPC when OTEL_EXPORTER_OTLP_PROTOCOL=grpc, to the endpoint the exporter reads itself', async () => {
    const batches: Buffer[] = [];
    const server = new GrpcServer();
    const bytes = { path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export', requestStream: false, responseStream: false };
    const raw = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
    server.addService({ Export: { ...bytes, ...raw } }, {
      Export: (call: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => {
        batches.push(call.request);
        done(null, Buffer.alloc(0));
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    try {
      const { tracing } = start({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, { memory: false });
      tracing.checks.startCheckFrom(new Map()).end(allow());
      await tracing.shutdown();
      expect(batches).toHaveLength(1);
      expect(batches[0]?.includes(Buffer.from('dec-allow-1'))).toBe(true);
    } finally {
      server.forceShutdown();
    }
  });

  it('batches by OTEL_BSP_* : nothing leaves before the schedule delay unless flushed', async () => {
    const receiver = await otlpReceiver();
    servers.push(receiver.server);
    const { tracing } = start({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '600000', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '2' }, { memory: false });
    tracing.checks.startCheckFrom(new Map()).end(allow());
    await new Promise((r) => setTimeout(r, 50));
    expect(receiver.received).toHaveLength(0);
    tracing.checks.startCheckFrom(new Map()).end(allow());
    // A full batch (two spans) is exported at once, without waiting for the delay.
    await vi.waitFor(() => expect(receiver.received).toHaveLength(1), { timeout: 5000 });
  });

  it('reports a rejected export batch as a warning instead of failing anything', async () => {
    const receiver = await otlpReceiver(400);
    servers.push(receiver.server);
    const warnings: string[] = [];
    const { tracing } = start({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, { memory: false, warnings });
    tracing.checks.startCheckFrom(new Map()).end(allow());
    await expect(tracing.shutdown()).resolves.toBeUndefined();
    expect(receiver.received).toHaveLength(1);
    expect(warnings).toEqual([expect.stringMatching(/^span export failed/)]);
  });
});
