import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { redactedUrl } from '../../src/telemetry/key-fetch-span.js';
import { ATTR, PHASE, SPAN_CHECK, startTracing, type Tracing } from '../../src/telemetry/tracing.js';
import { allow } from './fixtures.js';
import { otelEnv } from './otel-env.js';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

const started: { tracing: Tracing; server: Server }[] = [];
afterEach(async () => {
  for (const { tracing, server } of started.splice(0)) {
    await tracing.shutdown();
    await new Promise((r) => server.close(r));
  }
  vi.unstubAllEnvs();
});

/** A stand-in for Entra's key endpoints on loopback: `/fail` answers 503, anything else a JWKS. */
async function setup() {
  otelEnv();
  const server = createServer((req, res) => {
    res.writeHead(req.url?.startsWith('/fail') ? 503 : 200, { 'content-type': 'application/json' });
    res.end('{"keys":[]}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const exporter = new InMemorySpanExporter();
  const tracing = startTracing({ serviceName: 'entra-authz', spanProcessors: [new SimpleSpanProcessor(exporter)] });
  started.push({ tracing, server });
  const port = (server.address() as AddressInfo).port;
  return { tracing, exporter, port, base: `http://127.0.0.1:${port}`, fetch: tracing.traceKeyFetches(globalThis.fetch) };
}

const keyFetches = (exporter: InMemorySpanExporter): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === PHASE.keyFetch);

describe('key-fetch client spans', () => {
  it('records a JWKS request made during token verification as a CLIENT child of token.verify with HTTP attributes', async () => {
    const { tracing, exporter, port, base, fetch } = await setup();
    const span = tracing.checks.startCheckFrom(new Map([['traceparent', [TRACEPARENT]]]));
    // Stands for the key store: it knows nothing of tracing, only the fetch it was given.
    const body = await span.phase(PHASE.verifyToken, async () => (await fetch(`${base}/tenant/discovery/v2.0/keys?appid=abc&sig=s3cr3t`)).json());
    expect(body).toEqual({ keys: [] });
    span.end(allow());

    const [fetched] = keyFetches(exporter);
    const verify = exporter.getFinishedSpans().find((s) => s.name === PHASE.verifyToken);
    expect(fetched?.kind).toBe(SpanKind.CLIENT);
    expect(fetched?.parentSpanContext?.spanId).toBe(verify?.spanContext().spanId);
    expect(fetched?.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(fetched?.attributes).toEqual({
      'http.request.method': 'GET',
      'url.full': `${base}/tenant/discovery/v2.0/keys?appid=REDACTED&sig=REDACTED`,
      'server.address': '127.0.0.1',
      'server.port': port,
      'http.response.status_code': 200,
      [ATTR.keyFetchKind]: 'jwks',
      [ATTR.keyFetchResult]: 'ok',
    });
    expect(fetched?.status.code).toBe(SpanStatusCode.UNSET);
    expect(exporter.getFinishedSpans().map((s) => s.name)).toContain(SPAN_CHECK);
  });

  it('records a background discovery request as a root span, and an HTTP error status as a failed span', async () => {
    const { exporter, base, fetch } = await setup();
    await fetch(`${base}/fail/v2.0/.well-known/openid-configuration`);
    const [fetched] = keyFetches(exporter);
    expect(fetched?.parentSpanContext).toBeUndefined();
    expect(fetched?.attributes).toMatchObject({
      'http.response.status_code': 503,
      'error.type': '503',
      [ATTR.keyFetchKind]: 'discovery',
      [ATTR.keyFetchResult]: 'error',
    });
    expect(fetched?.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('makes a refresh armed during a check but fired after it a root span, not a child of the ended phase', async () => {
    const { tracing, exporter, base, fetch } = await setup();
    let refreshed: Promise<Response> | undefined;
    const span = tracing.checks.startCheckFrom(new Map());
    // Stands for the key store re-arming its background refresh while a check waits for keys.
    let fire: () => void = () => undefined;
    const armed = new Promise<void>((resolve) => (fire = resolve));
    await span.phase(PHASE.verifyToken, async () => {
      void armed.then(() => (refreshed = fetch(`${base}/t/discovery/v2.0/keys`)));
    });
    span.end(allow());
    fire();
    await vi.waitFor(() => expect(refreshed).toBeDefined());
    await refreshed;
    const [fetched] = keyFetches(exporter);
    expect(fetched?.parentSpanContext).toBeUndefined();
  });

  it('records a refused connection with the error type, and rethrows the error unchanged', async () => {
    const { exporter, port, fetch } = await setup();
    const closed = started[0]?.server;
    await new Promise((r) => closed?.close(r));
    await expect(fetch(`http://127.0.0.1:${port}/t/discovery/v2.0/keys`)).rejects.toThrow(TypeError);
    const [fetched] = keyFetches(exporter);
    expect(fetched?.status.code).toBe(SpanStatusCode.ERROR);
    expect(fetched?.attributes['error.type']).toBe('TypeError');
    expect(fetched?.attributes[ATTR.keyFetchResult]).toBe('error');
    expect(fetched?.attributes['http.response.status_code']).toBeUndefined();
  });

  it('never puts URL credentials or query values in url.full', () => {
    expect(redactedUrl(new URL('https://user:pw@login.example/t/keys?appid=1&appid=2&x'))).toBe('https://login.example/t/keys?appid=REDACTED&x=REDACTED');
  });
});

describe('Microsoft Graph client spans', () => {
  it('records a Graph call made while rules are evaluated as a graph.call CLIENT child, without its bearer token', async () => {
    const { tracing, exporter, port, base } = await setup();
    const fetch = tracing.traceGraphCalls(globalThis.fetch);
    const span = tracing.checks.startCheckFrom(new Map([['traceparent', [TRACEPARENT]]]));
    await span.phase(PHASE.evaluateRules, async () =>
      (await fetch(`${base}/v1.0/users/u1/checkMemberGroups`, { method: 'POST', headers: { authorization: 'Bearer graph-s3cr3t' }, body: '{}' })).json(),
    );
    span.end(allow());

    const call = exporter.getFinishedSpans().find((s) => s.name === PHASE.graphCall);
    const evaluate = exporter.getFinishedSpans().find((s) => s.name === PHASE.evaluateRules);
    expect(call?.kind).toBe(SpanKind.CLIENT);
    expect(call?.parentSpanContext?.spanId).toBe(evaluate?.spanContext().spanId);
    expect(call?.attributes).toMatchObject({
      'http.request.method': 'POST',
      'url.full': `${base}/v1.0/users/u1/checkMemberGroups`,
      'server.port': port,
      'http.response.status_code': 200,
    });
    expect(JSON.stringify(call?.attributes)).not.toContain('s3cr3t');
  });

  it('marks a Graph call that fails with an error status', async () => {
    const { tracing, exporter, base } = await setup();
    await tracing.traceGraphCalls(globalThis.fetch)(`${base}/fail/v1.0/users/u1/checkMemberGroups`, { method: 'POST' });
    const call = exporter.getFinishedSpans().find((s) => s.name === PHASE.graphCall);
    expect([call?.status.code, call?.attributes['error.type']]).toEqual([SpanStatusCode.ERROR, '503']);
  });
});
