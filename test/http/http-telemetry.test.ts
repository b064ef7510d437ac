import { randomBytes } from 'node:crypto';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SERVICE_NAME } from '../../src/cli/serve.js';
import { telemetrySchema } from '../../src/config/schema-telemetry.js';
import { DEMO } from '../../src/dev/emulator.js';
import type { AuditRecord } from '../../src/telemetry/audit.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { METRIC } from '../../src/telemetry/metrics.js';
import { startTelemetry, type Telemetry } from '../../src/telemetry/telemetry.js';
import { ATTR, SPAN_CHECK } from '../../src/telemetry/tracing.js';
import { allowance, startHarness, type Harness } from '../support/harness.js';
import { findSample, httpGet, parsePrometheus } from '../telemetry/fixtures.js';
import { send } from './support.js';

/** Audit records, spans and metrics of checks that came through the HTTP listener. */
describe('HTTP authorization mode telemetry', () => {
  const exporter = new InMemorySpanExporter();
  const auditLines: string[] = [];
  let telemetry: Telemetry;
  let h: Harness;
  let base: string;

  beforeAll(async () => {
    telemetry = await startTelemetry({
      config: telemetrySchema.parse({ admin: { listen: '127.0.0.1:0' } }),
      serviceName: SERVICE_NAME,
      isReady: () => true,
      spanProcessors: [new SimpleSpanProcessor(exporter)],
      auditTarget: { write: (line) => void auditLines.push(line) },
      processMetrics: false,
    });
    h = await startHarness({ server: { http: { listen: '127.0.0.1:0' } }, deps: { log: silentLogger(), telemetry } });
    await h.waitServing();
    base = `http://${h.app.httpAddress}`;
  });
  afterAll(async () => {
    await h?.close();
    await telemetry?.shutdown();
  });

  it('records the decision with mode http in the audit record, the span (parented on traceparent) and the metrics', async () => {
    const traceId = randomBytes(16).toString('hex');
    const parentSpanId = randomBytes(8).toString('hex');
    const token = await h.emulator.issueToken({ appId: DEMO.clients.reader.clientId });
    const reply = await send(`${base}/forward-auth`, {
      headers: [
        ['X-Forwarded-Method', 'GET'],
        ['X-Forwarded-Uri', '/orders?page=2'],
        ['X-Forwarded-Host', 'shop.example.com'],
        ['Authorization', `Bearer ${token}`],
        ['traceparent', `00-${traceId}-${parentSpanId}-01`],
      ],
    });
    expect(reply.status).toBe(200);
    const decisionId = String(reply.headers['x-entra-decision-id']);

    const record = await vi.waitFor(() => {
      const found = auditLines.map((l) => JSON.parse(l) as AuditRecord).find((r) => r.decisionId === decisionId);
      if (!found) throw new Error('no audit record yet');
      return found;
    });
    expect(record).toMatchObject({ mode: 'http', decision: 'allow', method: 'GET', host: 'shop.example.com', path: '/orders', traceId });
    expect(JSON.stringify(record)).not.toContain(token);

    const span = exporter.getFinishedSpans().find((s) => s.attributes[ATTR.decisionId] === decisionId);
    expect(span?.name).toBe('GET /forward-auth');
    expect(span?.attributes).toMatchObject({
      [ATTR.mode]: 'http',
      'http.request.method': 'GET',
      'http.route': '/forward-auth',
      'url.path': '/forward-auth',
      'http.response.status_code': 200,
    });
    expect(Object.keys(span?.attributes ?? {}).filter((k) => k.startsWith('rpc.'))).toEqual([]);
    expect(span?.spanContext().traceId).toBe(traceId);
    expect(span?.parentSpanContext?.spanId).toBe(parentSpanId);

    const samples = parsePrometheus((await httpGet(`${telemetry.admin.url}/metrics`)).body);
    expect(findSample(samples, METRIC.decisions, { decision: 'allow', reason: 'allowed', mode: 'http' })?.value).toBe(1);
    expect(findSample(samples, METRIC.decisions, { decision: 'allow', reason: 'allowed', mode: 'grpc' })).toBeUndefined();
  });

  it('records a malformed HTTP authorization request as a request_malformed deny', async () => {
    const reply = await send(`${base}/nginx`, { headers: [['X-Original-Method', 'GET'], ['X-Original-Host', 'shop.example.com']] });
    const decisionId = String(reply.headers['x-entra-decision-id']);
    const record = await vi.waitFor(() => {
      const found = auditLines.map((l) => JSON.parse(l) as AuditRecord).find((r) => r.decisionId === decisionId);
      if (!found) throw new Error('no audit record yet');
      return found;
    });
    expect(record).toMatchObject({ mode: 'http', decision: 'deny', reason: 'request_malformed', detail: 'no x-original-uri header' });
    // nginx turns any status but 401/403 into a 500, so the 400 of request_malformed is answered as 403.
    expect(reply.status).toBe(403);
    const span = exporter.getFinishedSpans().find((s) => s.attributes[ATTR.decisionId] === decisionId);
    expect(span?.name).toBe('GET /nginx');
    expect(span?.attributes['http.response.status_code']).toBe(403);
  });

  it('traces an Envoy http_service check with the normalised original path behind the prefix and never its query', async () => {
    const reply = await send(`${base}/envoy/%6Frders/?secret=hunter2`, { method: 'POST', headers: [['Host', 'shop.example.com']] });
    expect(reply.status).toBe(401);
    const decisionId = String(reply.headers['x-entra-decision-id']);
    const span = await vi.waitFor(() => {
      const found = exporter.getFinishedSpans().find((s) => s.attributes[ATTR.decisionId] === decisionId);
      if (!found) throw new Error('no span yet');
      return found;
    });
    expect(span.name).toBe('POST /envoy/*');
    expect(span.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/envoy/*', 'url.path': '/envoy/orders/', 'http.response.status_code': 401 });
    expect(JSON.stringify(span.attributes)).not.toContain('hunter2');
  });

  it('keeps the gRPC span shape for checks that come through the gRPC listener of the same server', async () => {
    const token = await h.emulator.issueToken({ appId: DEMO.clients.reader.clientId });
    const decisionId = allowance(await h.check({ token, path: '/orders' })).metadata['decision_id'];
    expect(decisionId).toEqual(expect.any(String));
    const span = await vi.waitFor(() => {
      const found = exporter.getFinishedSpans().find((s) => s.attributes[ATTR.decisionId] === decisionId);
      if (!found) throw new Error('no span yet');
      return found;
    });
    expect(span.name).toBe(SPAN_CHECK);
    expect(span.attributes).toMatchObject({ [ATTR.mode]: 'grpc', 'rpc.method': 'Check', 'rpc.grpc.status_code': 0 });
    expect(span.attributes).not.toHaveProperty('http.request.method');
  });
});
