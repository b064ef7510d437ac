import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { telemetrySchema } from '../../src/config/schema-telemetry.js';
import type { AuditRecord } from '../../src/telemetry/audit.js';
import { METRIC } from '../../src/telemetry/metrics.js';
import { startTelemetry, type Telemetry } from '../../src/telemetry/telemetry.js';
import { ATTR, PHASE, SPAN_CHECK } from '../../src/telemetry/tracing.js';
import { allow, deny, findSample, httpGet, parsePrometheus, requestView } from './fixtures.js';
import { otelEnv } from './otel-env.js';

const started: Telemetry[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.shutdown()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  vi.unstubAllEnvs();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'entra-authz-telemetry-'));
  dirs.push(d);
  return d;
}

async function start(file: string, ready = true) {
  const exporter = new InMemorySpanExporter();
  const warnings: string[] = [];
  otelEnv({ OTEL_PROPAGATORS: 'tracecontext,nonsense' });
  const telemetry = await startTelemetry({
    config: telemetrySchema.parse({ admin: { listen: '127.0.0.1:0' }, audit: { sink: 'file', file } }),
    serviceName: 'entra-authz',
    isReady: () => ready,
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    processMetrics: false,
    now: () => new Date('2025-01-02T03:04:05.000Z'),
    onWarning: (m) => warnings.push(m),
  });
  started.push(telemetry);
  return { telemetry, exporter, warnings };
}

describe('telemetry composition', () => {
  it('records one decision as a span, a metric sample and an audit line that share the decision and trace ids', async () => {
    const file = join(tempDir(), 'audit.log');
    const { telemetry, exporter, warnings } = await start(file);
    expect(warnings.join()).toMatch(/OTEL_PROPAGATORS: "nonsense"/);

    const request = requestView({
      query: 'code=abc',
      headerList: [
        ['x-request-id', 'req-9'],
        ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ],
    });
    const span = telemetry.checks.startCheckFrom(request.headers, () => ({}));
    await span.phase(PHASE.evaluateRules, async () => undefined);
    const outcomes = [{ requirement: 'roles anyOf Orders.Admin', met: false, detail: 'has Orders.Read, Orders.Write' }];
    telemetry.recordDecision({ span, outcome: { decision: deny(), request, outcomes }, durationMs: 1.5, dryRun: true });
    await telemetry.audit.flush();

    const check = exporter.getFinishedSpans().find((s) => s.name === SPAN_CHECK);
    expect(check?.attributes[ATTR.decisionId]).toBe('dec-deny-1');
    expect(check?.attributes[ATTR.dryRun]).toBe(true);

    const [line] = readFileSync(file, 'utf8').split('\n');
    const record = JSON.parse(line ?? '') as AuditRecord;
    expect(record).toMatchObject({
      decisionId: 'dec-deny-1',
      decision: 'deny',
      dryRun: true,
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: check?.spanContext().spanId,
      requestId: 'req-9',
      query: '[redacted]',
      time: '2025-01-02T03:04:05.000Z',
      durationMs: 1.5,
      cacheHit: false,
      requirements: outcomes,
    });

    telemetry.onKeyFetch('jwks', 'ok', 40);

    const samples = parsePrometheus((await httpGet(`${telemetry.admin.url}/metrics`)).body);
    expect(findSample(samples, METRIC.decisions, { decision: 'deny', reason: 'missing_role' })?.value).toBe(1);
    expect(findSample(samples, METRIC.keyFetches, { kind: 'jwks', result: 'success' })?.value).toBe(1);
    expect(findSample(samples, `${METRIC.checkDuration}_sum`, { decision: 'deny' })?.value).toBeCloseTo(0.0015, 9);
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(findSample(samples, METRIC.buildInfo)?.labels).toEqual({ version, node_version: process.version });
    expect((await httpGet(`${telemetry.admin.url}/readyz`)).status).toBe(200);
  });

  it('drops audit records beyond telemetry.audit.maxBufferBytes, reports it once and counts them in /metrics', async () => {
    const file = join(tempDir(), 'audit.log');
    const overflows: number[] = [];
    const telemetry = await startTelemetry({
      config: telemetrySchema.parse({ admin: { listen: '127.0.0.1:0' }, audit: { sink: 'file', file, maxBufferBytes: 64 * 1024 } }),
      serviceName: 'entra-authz',
      isReady: () => true,
      processMetrics: false,
      onAuditOverflow: (max) => overflows.push(max),
    });
    started.push(telemetry);
    // Far more than 64 KiB in one go: the disk cannot take it before the buffer fills.
    for (let i = 0; i < 500; i++) {
      telemetry.recordDecision({ span: telemetry.checks.startCheckFrom(new Map()), durationMs: 0.2, outcome: { decision: deny(), request: undefined, outcomes: [] } });
    }
    await telemetry.audit.flush();
    const { written, dropped } = telemetry.audit.stats;
    expect(dropped).toBeGreaterThan(0);
    expect(written + dropped).toBe(500);
    expect(overflows).toEqual([64 * 1024]);
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditRecord)).toHaveLength(written);
    const metrics = parsePrometheus((await httpGet(`${telemetry.admin.url}/metrics`)).body);
    expect(findSample(metrics, METRIC.auditDropped)?.value).toBe(dropped);
  });

  it('switches the audit sink on a reloaded configuration and counts records dropped by a failing sink', async () => {
    const dir = tempDir();
    const first = join(dir, 'first.log');
    const { telemetry } = await start(first);
    const span = telemetry.checks.startCheckFrom(new Map());
    telemetry.recordDecision({ span, durationMs: 0.2, outcome: { decision: allow(), request: undefined, outcomes: [], tokenCacheHit: true } });

    const second = join(dir, 'second.log');
    await telemetry.setAuditConfig({ sink: 'file', file: second, sampleAllows: 1, redactQuery: false, maxBufferBytes: 16 * 1024 * 1024 });
    telemetry.recordDecision({ span: telemetry.checks.startCheckFrom(new Map()), durationMs: 0.2, outcome: { decision: deny(), request: undefined, outcomes: [], tokenCacheHit: false } });
    await telemetry.audit.flush();
    expect(readFileSync(first, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
    expect(readFileSync(second, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);

    // A directory as the audit file: reported (here to a collector), dropped, counted.
    const errors: string[] = [];
    const failing = await startTelemetry({
      config: telemetrySchema.parse({ admin: { listen: '127.0.0.1:0' }, audit: { sink: 'file', file: dir } }),
      serviceName: 'entra-authz',
      isReady: () => true,
      processMetrics: false,
      onAuditError: (err) => errors.push((err as NodeJS.ErrnoException).code ?? ''),
    });
    started.push(failing);
    failing.recordDecision({ span: failing.checks.startCheckFrom(new Map()), durationMs: 0.2, outcome: { decision: deny(), request: undefined, outcomes: [], tokenCacheHit: false } });
    await failing.audit.flush();
    failing.recordDecision({ span: failing.checks.startCheckFrom(new Map()), durationMs: 0.2, outcome: { decision: deny(), request: undefined, outcomes: [], tokenCacheHit: false } });
    expect(errors).toEqual(['EISDIR']);
    const samples = parsePrometheus((await httpGet(`${failing.admin.url}/metrics`)).body);
    expect(findSample(samples, METRIC.auditDropped)?.value).toBe(1);
  });

  it('reports not ready through /readyz and releases everything on shutdown', async () => {
    const { telemetry } = await start(join(tempDir(), 'a.log'), false);
    expect((await httpGet(`${telemetry.admin.url}/readyz`)).status).toBe(503);
    await telemetry.shutdown();
    await expect(httpGet(`${telemetry.admin.url}/healthz`)).rejects.toThrow();
    await telemetry.shutdown();
  });

  it('fails to start, cleanly, when the admin port is taken', async () => {
    const { telemetry } = await start(join(tempDir(), 'a.log'));
    const port = new URL(telemetry.admin.url).port;
    await expect(
      startTelemetry({
        config: telemetrySchema.parse({ admin: { listen: `127.0.0.1:${port}` }, audit: { sink: 'off' } }),
        serviceName: 'entra-authz',
        isReady: () => true,
        processMetrics: false,
      }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
