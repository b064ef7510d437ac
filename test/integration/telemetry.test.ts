import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, credentials } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { envoyCheckRequest, type CheckRequestOptions } from '../../src/cli/check.js';
import { SERVICE_NAME, startService } from '../../src/cli/serve.js';
import { telemetrySchema, type TelemetryConfigInput } from '../../src/config/schema-telemetry.js';
import type { Config } from '../../src/config/schema.js';
import { DEMO, startEntraEmulator, type EntraEmulator } from '../../src/dev/emulator.js';
import type { RunningApp } from '../../src/runtime/app.js';
import type { Logger } from '../../src/telemetry/logger.js';
import { createAuthorizationClient } from '../../src/server/protos.js';
import { REDACTED, type AuditRecord } from '../../src/telemetry/audit.js';
import { METRIC } from '../../src/telemetry/metrics.js';
import { startTelemetry, type Telemetry } from '../../src/telemetry/telemetry.js';
import { ATTR, PHASE, SPAN_CHECK } from '../../src/telemetry/tracing.js';
import { findSample, httpGet, parsePrometheus, type HttpResult, type Sample } from '../telemetry/fixtures.js';
import { allowance, denial, harnessConfig, startHarness, type CheckResult, type Harness, type HarnessOptions } from '../support/harness.js';
import { sharedKeyPairs } from '../fixtures/keys.js';

/*
 * Telemetry end to end: the real gRPC server (startApp / startService) answering Checks on
 * loopback, signing keys fetched over HTTP from the Entra emulator, and every telemetry output
 * captured — spans in memory, audit lines in memory (or a real file path), the admin endpoints
 * scraped over HTTP, the operational log in an in-memory pino stream.
 */

const { reader, writer } = DEMO.clients;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** A pino logger writing JSON lines into `lines` (the operational log, as production configures it). */
function memoryLogger(lines: string[]): Logger {
  return pino({ level: 'debug', base: { service: SERVICE_NAME } }, { write: (line: string) => void lines.push(line) });
}

interface Observed {
  readonly h: Harness;
  readonly telemetry: Telemetry;
  readonly exporter: InMemorySpanExporter;
  /** Raw audit lines, each with its trailing newline, as the sink wrote them. */
  readonly auditLines: string[];
  /** Operational log lines (pino JSON). */
  readonly logLines: string[];
  records(): AuditRecord[];
  spans(): ReadableSpan[];
  admin(path: string): Promise<HttpResult>;
  close(): Promise<void>;
}

/**
 * The harness server with full telemetry: tracing through an in-memory exporter (no OTEL_*
 * variables: the injected processor alone turns tracing on), audit records to an in-memory line
 * consumer, the admin listener on a free loopback port, the operational log in memory.
 */
async function startObserved(opts: HarnessOptions = {}): Promise<Observed> {
  const exporter = new InMemorySpanExporter();
  const auditLines: string[] = [];
  const logLines: string[] = [];
  const log = memoryLogger(logLines);
  const started: { app?: RunningApp } = {};
  const telemetry = await startTelemetry({
    config: telemetrySchema.parse({ admin: { listen: '127.0.0.1:0' } }),
    serviceName: SERVICE_NAME,
    isReady: () => started.app?.isServing() ?? false,
    onWarning: (m) => log.warn(m),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    auditTarget: { write: (line) => void auditLines.push(line) },
    processMetrics: false,
  });
  let h: Harness;
  try {
    h = await startHarness({ ...opts, deps: { log, telemetry, ...opts.deps } });
  } catch (err) {
    await telemetry.shutdown();
    throw err;
  }
  started.app = h.app;
  return {
    h,
    telemetry,
    exporter,
    auditLines,
    logLines,
    records: () => auditLines.map((l) => JSON.parse(l) as AuditRecord),
    spans: () => exporter.getFinishedSpans(),
    admin: (path) => httpGet(`${telemetry.admin.url}${path}`),
    async close() {
      await h.close();
      await telemetry.shutdown();
    },
  };
}

/** The decision id of any response (allow or deny), from its dynamic metadata. */
function decisionIdOf(result: CheckResult): string {
  if (result.kind !== 'response') throw new Error(`expected a response, got RPC error ${result.code} ${result.details}`);
  const id = result.response.dynamic_metadata?.fields?.['decision_id']?.stringValue;
  if (id === undefined || id === '') throw new Error(`no decision_id in ${JSON.stringify(result.response)}`);
  return id;
}

/** The Check span carrying that decision id (bounded wait: it ends right after the answer is sent). */
async function checkSpan(o: Observed, decisionId: string): Promise<ReadableSpan> {
  return vi.waitFor(
    () => {
      const found = o.spans().filter((s) => s.name === SPAN_CHECK && s.attributes[ATTR.decisionId] === decisionId);
      if (found.length !== 1) throw new Error(`expected one Check span for ${decisionId}, found ${found.length}`);
      return found[0] as ReadableSpan;
    },
    { timeout: 5000, interval: 10 },
  );
}

function auditRecord(o: Observed, decisionId: string): AuditRecord {
  const found = o.records().filter((r) => r.decisionId === decisionId);
  expect(found).toHaveLength(1);
  return found[0] as AuditRecord;
}

function childrenOf(o: Observed, parent: ReadableSpan): ReadableSpan[] {
  const { traceId, spanId } = parent.spanContext();
  return o.spans().filter((s) => s.parentSpanContext?.spanId === spanId && s.spanContext().traceId === traceId);
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');
const traceparent = (traceId: string, spanId: string, flags = '01'): string => `00-${traceId}-${spanId}-${flags}`;

async function metricSamples(o: { admin(path: string): Promise<HttpResult> }): Promise<Sample[]> {
  const res = await o.admin('/metrics');
  expect(res.status).toBe(200);
  return parsePrometheus(res.body);
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return findSample(samples, name, labels)?.value;
}

// ---------------------------------------------------------------------------------------------
// 1. Traces
// ---------------------------------------------------------------------------------------------

describe('tracing through the real server', () => {
  let o: Observed;
  beforeAll(async () => {
    o = await startObserved();
    await o.h.waitServing();
  });
  afterAll(() => o.close());

  it('starts one SERVER span per Check as a child of the traceparent in the CheckRequest headers, with verify and evaluate children', async () => {
    const traceId = hex(16);
    const parentId = hex(8);
    const token = await o.h.emulator.issueToken({ appId: reader.clientId });
    const result = await o.h.check({
      token,
      path: '/orders',
      headers: { traceparent: traceparent(traceId, parentId), tracestate: 'vendor=opaque' },
    });
    const a = allowance(result);
    const id = decisionIdOf(result);
    expect(a.metadata['decision_id']).toBe(id);

    const span = await checkSpan(o, id);
    expect(o.spans().filter((s) => s.name === SPAN_CHECK && s.spanContext().traceId === traceId)).toHaveLength(1);
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.spanContext().traceId).toBe(traceId);
    expect(span.spanContext().spanId).not.toBe(parentId);
    expect(span.parentSpanContext?.spanId).toBe(parentId);
    expect(span.parentSpanContext?.isRemote).toBe(true);
    expect(span.spanContext().traceState?.get('vendor')).toBe('opaque');
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.service': 'envoy.service.auth.v3.Authorization',
      'rpc.method': 'Check',
      [ATTR.decisionId]: id,
      [ATTR.decision]: 'allow',
      [ATTR.reason]: 'allowed',
      [ATTR.rule]: 'orders-read',
      [ATTR.tenantId]: DEMO.tenantId,
      [ATTR.appId]: reader.clientId,
      [ATTR.cacheHit]: false,
      [ATTR.dryRun]: false,
    });

    const children = childrenOf(o, span);
    expect(children.map((s) => s.name).sort()).toEqual([PHASE.evaluateRules, PHASE.verifyToken].sort());
    for (const child of children) {
      expect(child.kind).toBe(SpanKind.INTERNAL);
      expect(child.status.code).toBe(SpanStatusCode.UNSET);
    }

    // The same ids reach the audit record.
    expect(auditRecord(o, id)).toMatchObject({ decisionId: id, traceId, spanId: span.spanContext().spanId });
  });

  it('records the decision attributes of a deny, sharing its decision id with the response and the audit record', async () => {
    const token = await o.h.emulator.issueToken({ appId: reader.clientId });
    const result = await o.h.check({ token, contextExtensions: { policy: 'orders-write' } });
    const d = denial(result);
    expect(d.reason).toBe('missing_role');
    const id = decisionIdOf(result);
    expect(d.headers['x-entra-decision-id']).toBe(id);

    const span = await checkSpan(o, id);
    expect(span.attributes).toMatchObject({
      [ATTR.decisionId]: id,
      [ATTR.decision]: 'deny',
      [ATTR.reason]: 'missing_role',
      [ATTR.rule]: 'orders-write',
      [ATTR.tenantId]: DEMO.tenantId,
      [ATTR.appId]: reader.clientId,
    });
    // A deny is the service working: no error status.
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(childrenOf(o, span).map((s) => s.name).sort()).toEqual([PHASE.evaluateRules, PHASE.verifyToken].sort());
    const record = auditRecord(o, id);
    expect(record).toMatchObject({ decision: 'deny', reason: 'missing_role', traceId: span.spanContext().traceId, spanId: span.spanContext().spanId });
  });

  it('records a keys.fetch CLIENT span under token.verify when an unknown kid makes the server refresh its keys', async () => {
    // The key fetches of start-up are background work: root spans.
    const startup = o.spans().filter((s) => s.name === PHASE.keyFetch && s.parentSpanContext === undefined);
    expect(new Set(startup.map((s) => s.attributes[ATTR.keyFetchKind]))).toEqual(new Set(['discovery', 'jwks']));

    // Past the unknown-kid cooldown, whatever ran before.
    o.h.clock.advance(301_000);
    const kid = await o.h.emulator.rotateKeys();
    const token = await o.h.emulator.issueToken({ kid, appId: reader.clientId });
    o.h.emulator.resetCounts();
    const result = await o.h.check({ token, headers: { traceparent: traceparent(hex(16), hex(8)) } });
    allowance(result);
    expect(o.h.emulator.fetchCount('jwks')).toBeGreaterThanOrEqual(1);

    const span = await checkSpan(o, decisionIdOf(result));
    const verify = childrenOf(o, span).find((s) => s.name === PHASE.verifyToken);
    expect(verify).toBeDefined();
    const fetches = childrenOf(o, verify as ReadableSpan);
    expect(fetches.length).toBeGreaterThanOrEqual(1);
    for (const f of fetches) {
      expect(f.name).toBe(PHASE.keyFetch);
      expect(f.kind).toBe(SpanKind.CLIENT);
      expect(f.attributes[ATTR.keyFetchResult]).toBe('ok');
      expect(f.status.code).not.toBe(SpanStatusCode.ERROR);
    }
    expect(fetches.map((f) => f.attributes[ATTR.keyFetchKind])).toContain('jwks');
  });

  const b3Cases: [string, (traceId: string, spanId: string) => Record<string, string>][] = [
    ['a single b3 header', (t, s) => ({ b3: `${t}-${s}-1` })],
    ['multi x-b3-* headers', (t, s) => ({ 'x-b3-traceid': t, 'x-b3-spanid': s, 'x-b3-sampled': '1' })],
  ];
  for (const [name, headers] of b3Cases) {
    it(`takes the parent from ${name} when there is no traceparent`, async () => {
      const traceId = hex(16);
      const parentId = hex(8);
      const token = await o.h.emulator.issueToken({ appId: reader.clientId });
      const result = await o.h.check({ token, headers: headers(traceId, parentId) });
      allowance(result);
      const span = await checkSpan(o, decisionIdOf(result));
      expect(span.spanContext().traceId).toBe(traceId);
      expect(span.parentSpanContext?.spanId).toBe(parentId);
      expect(childrenOf(o, span)).toHaveLength(2);
    });
  }

  it('prefers the W3C traceparent over B3 headers in the same request', async () => {
    const w3cTrace = hex(16);
    const w3cParent = hex(8);
    const result = await o.h.check({
      token: await o.h.emulator.issueToken({ appId: reader.clientId }),
      headers: { traceparent: traceparent(w3cTrace, w3cParent), b3: `${hex(16)}-${hex(8)}-1` },
    });
    const span = await checkSpan(o, decisionIdOf(result));
    expect(span.spanContext().traceId).toBe(w3cTrace);
    expect(span.parentSpanContext?.spanId).toBe(w3cParent);
  });

  it('falls back to the trace context of the gRPC call metadata when the request carries none', async () => {
    const traceId = hex(16);
    const parentId = hex(8);
    const metadata = new Metadata();
    metadata.set('traceparent', traceparent(traceId, parentId));
    const request = envoyCheckRequest({ token: await o.h.emulator.issueToken({ appId: reader.clientId }) });
    const result = await new Promise<CheckResult>((resolve) => {
      o.h.client.Check(request, metadata, (err, res) =>
        resolve(err ? { kind: 'error', code: err.code, details: err.details } : { kind: 'response', response: res ?? {} }),
      );
    });
    allowance(result);
    const span = await checkSpan(o, decisionIdOf(result));
    expect(span.spanContext().traceId).toBe(traceId);
    expect(span.parentSpanContext?.spanId).toBe(parentId);
  });

  const malformed: [string, Record<string, string>][] = [
    ['a traceparent that is not hex', { traceparent: '00-not-a-trace-id-at-all-01' }],
    ['an all-zero traceparent', { traceparent: traceparent('0'.repeat(32), '0'.repeat(16)) }],
    ['a traceparent with a truncated span id', { traceparent: `00-${'ab'.repeat(16)}-abc-01` }],
    ['a b3 header of junk', { b3: 'junk-!!-\u0000' }],
  ];
  for (const [name, headers] of malformed) {
    it(`starts a new trace and still answers for ${name}`, async () => {
      const result = await o.h.check({ token: await o.h.emulator.issueToken({ appId: reader.clientId }), headers });
      allowance(result);
      const id = decisionIdOf(result);
      const span = await checkSpan(o, id);
      expect(span.parentSpanContext).toBeUndefined();
      expect(span.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(span.spanContext().traceId).not.toBe('0'.repeat(32));
      expect(span.spanContext().traceId).not.toBe('ab'.repeat(16));
      expect(childrenOf(o, span)).toHaveLength(2);
      expect(auditRecord(o, id).traceId).toBe(span.spanContext().traceId);
    });
  }

  it('records no span for a parent that says "not sampled", but still puts its trace id in the audit record', async () => {
    const traceId = hex(16);
    const result = await o.h.check({
      token: await o.h.emulator.issueToken({ appId: reader.clientId }),
      headers: { traceparent: traceparent(traceId, hex(8), '00') },
    });
    allowance(result);
    const id = decisionIdOf(result);
    expect(auditRecord(o, id).traceId).toBe(traceId);
    expect(o.spans().filter((s) => s.spanContext().traceId === traceId)).toEqual([]);
  });

  it('marks the span of a check that could not be decided as an error, and still audits and counts it', async () => {
    const down = await startObserved({ emulatorDown: true });
    try {
      const traceId = hex(16);
      const result = await down.h.check({
        token: await down.h.emulator.issueToken({ appId: reader.clientId }),
        headers: { traceparent: traceparent(traceId, hex(8)) },
      });
      expect(result).toMatchObject({ kind: 'error', code: 14 });
      const span = await vi.waitFor(
        () => {
          const s = down.spans().find((x) => x.name === SPAN_CHECK && x.spanContext().traceId === traceId);
          if (s === undefined) throw new Error('no Check span yet');
          return s;
        },
        { timeout: 5000, interval: 10 },
      );
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'keys_unavailable' });
      expect(span.attributes).toMatchObject({ [ATTR.decision]: 'unavailable', [ATTR.reason]: 'keys_unavailable' });
      // Failed fetches are ERROR keys.fetch spans (whether the check started one or joined the
      // start-up fetch in flight depends on timing, so only their existence is asserted).
      const fetches = down.spans().filter((s) => s.name === PHASE.keyFetch);
      expect(fetches.length).toBeGreaterThanOrEqual(1);
      for (const f of fetches) {
        expect(f.attributes[ATTR.keyFetchResult]).toBe('error');
        expect(f.status.code).toBe(SpanStatusCode.ERROR);
      }

      const id = span.attributes[ATTR.decisionId] as string;
      expect(auditRecord(down, id)).toMatchObject({ decision: 'unavailable', reason: 'keys_unavailable', traceId });
      const samples = await metricSamples(down);
      expect(value(samples, METRIC.decisions, { decision: 'unavailable', reason: 'keys_unavailable' })).toBe(1);
      expect((await down.admin('/readyz')).status).toBe(503);
    } finally {
      await down.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Metrics and the admin endpoints
// ---------------------------------------------------------------------------------------------

describe('admin endpoints of the real server', () => {
  let o: Observed | undefined;
  afterEach(async () => {
    await o?.close();
    o = undefined;
  });

  it('counts decisions by outcome, reason and rule, and gRPC statuses, times them and reports key fetches and loaded keys on /metrics', async () => {
    o = await startObserved();
    await o.h.waitServing();
    const h = o.h;

    for (let i = 0; i < 3; i++) allowance(await h.check({ token: await h.emulator.issueToken({ appId: reader.clientId }) }));
    allowance(await h.check({ token: await h.emulator.issueToken({ appId: writer.clientId }), contextExtensions: { policy: 'orders-write' } }));
    for (let i = 0; i < 2; i++) expect(denial(await h.check({})).reason).toBe('token_missing');
    expect(denial(await h.check({ token: await h.emulator.issueToken({ appId: reader.clientId }), contextExtensions: { policy: 'orders-write' } })).reason).toBe(
      'missing_role',
    );
    const expired = await h.emulator.issueToken({ issuedAt: h.clock.now() / 1000 - 7200, expiresInSeconds: 3600 });
    expect(denial(await h.check({ token: expired })).reason).toBe('token_expired');

    const res = await o.admin('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parsePrometheus(res.body);

    const decisions = samples.filter((s) => s.name === METRIC.decisions);
    expect(decisions.map((s) => [s.labels['decision'], s.labels['reason'], s.labels['rule'], s.value]).sort()).toEqual(
      [
        ['allow', 'allowed', 'orders-read', 3],
        ['allow', 'allowed', 'orders-write', 1],
        ['deny', 'missing_role', 'orders-write', 1],
        ['deny', 'token_expired', 'orders-read', 1],
        ['deny', 'token_missing', 'orders-read', 2],
      ].sort(),
    );
    const statuses = samples.filter((s) => s.name === METRIC.grpcStatus);
    expect(statuses.map((s) => [s.labels['grpc_code'], s.value]).sort()).toEqual([['0', 4], ['16', 3], ['7', 1]].sort());

    const histogram = METRIC.checkDuration;
    expect(value(samples, `${histogram}_count`, { decision: 'allow' })).toBe(4);
    expect(value(samples, `${histogram}_count`, { decision: 'deny' })).toBe(4);
    expect(value(samples, `${histogram}_bucket`, { decision: 'allow', le: '+Inf' })).toBe(4);
    expect(value(samples, `${histogram}_sum`, { decision: 'allow' })).toBeGreaterThan(0);

    for (const kind of ['discovery', 'jwks']) {
      expect(value(samples, METRIC.keyFetches, { kind, result: 'success' })).toBeGreaterThanOrEqual(1);
      expect(value(samples, `${METRIC.keyFetchDuration}_count`, { kind })).toBeGreaterThanOrEqual(1);
    }
    const loaded = samples.filter((s) => s.name === METRIC.keysLoaded);
    expect(loaded.length).toBeGreaterThanOrEqual(1);
    for (const s of loaded) {
      expect(s.labels['tenant']).toBe(DEMO.tenantId);
      expect(['1.0', '2.0']).toContain(s.labels['version']);
      expect(s.value).toBeGreaterThan(0);
    }
    expect(loaded.map((s) => s.labels['version'])).toContain('2.0');
    expect(value(samples, METRIC.auditDropped)).toBe(0);
    // Label values come from closed sets only: no request input became a series.
    expect(res.body).not.toContain(expired.slice(0, 40));
  });

  it('answers /readyz 503 until the signing keys are loaded, then 200, with /healthz 200 throughout (as serve wires it)', async () => {
    const emulator = await startEntraEmulator({ keyPairs: sharedKeyPairs() });
    emulator.setAvailable(false);
    const logLines: string[] = [];
    const config: Config = {
      ...harnessConfig(emulator.url),
      telemetry: telemetrySchema.parse({ admin: { listen: '127.0.0.1:0' }, audit: { sink: 'off' } } satisfies TelemetryConfigInput),
    };
    const service = await startService(config, memoryLogger(logLines));
    const admin = { admin: (path: string) => httpGet(`${service.telemetry.admin.url}${path}`) };
    try {
      expect(await admin.admin('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
      const notReady = await admin.admin('/readyz');
      expect(notReady.status).toBe(503);
      expect(JSON.parse(notReady.body)).toMatchObject({ ready: false });

      const before = await metricSamples(admin);
      const failures = before.filter((s) => s.name === METRIC.keyFetches && s.labels['result'] === 'failure');
      expect(failures.reduce((n, s) => n + s.value, 0)).toBeGreaterThanOrEqual(1);
      for (const s of before.filter((x) => x.name === METRIC.keysLoaded)) expect(s.value).toBe(0);

      emulator.setAvailable(true);
      const ready = await vi.waitFor(
        async () => {
          const r = await admin.admin('/readyz');
          if (r.status !== 200) throw new Error(`still ${r.status}`);
          return r;
        },
        { timeout: 10_000, interval: 25 },
      );
      expect(JSON.parse(ready.body)).toEqual({ ready: true });
      expect((await admin.admin('/healthz')).status).toBe(200);

      const after = await metricSamples(admin);
      const loaded = after.filter((s) => s.name === METRIC.keysLoaded);
      expect(loaded.length).toBeGreaterThanOrEqual(1);
      for (const s of loaded) expect(s.value).toBeGreaterThan(0);
      expect(logLines.some((l) => l.includes('admin endpoints listening'))).toBe(true);
    } finally {
      await service.stop();
      await emulator.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Audit records
// ---------------------------------------------------------------------------------------------

const AUDIT_KEYS = [
  'time', 'type', 'decisionId', 'decision', 'reason', 'rule', 'mode', 'dryRun', 'wouldDeny', 'detail',
  'oid', 'tid', 'appId', 'tokenType', 'tokenVersion', 'roles', 'scopes', 'requirements', 'uti', 'tokenHash',
  'method', 'host', 'path', 'query', 'sourceAddress', 'sourcePort', 'peerPrincipal', 'peerCertFingerprint', 'requestId',
  'traceId', 'spanId', 'durationMs', 'cacheHit',
];

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('audit records from the real server', () => {
  let o: Observed;
  beforeAll(async () => {
    o = await startObserved();
    await o.h.waitServing();
  });
  afterAll(() => o.close());

  it('writes one line per decision, each carrying the decision id of its response', async () => {
    const before = o.auditLines.length;
    const token = await o.h.emulator.issueToken({ appId: reader.clientId });
    const results = [
      await o.h.check({ token }),
      await o.h.check({}),
      await o.h.check({ token, contextExtensions: { policy: 'orders-write' } }),
      await o.h.check({ token: 'not.a.jwt' }),
      await o.h.check({ token, path: '/orders/7' }),
    ];
    const lines = o.auditLines.slice(before);
    expect(lines).toHaveLength(results.length);
    for (const line of lines) {
      expect(line.endsWith('\n')).toBe(true);
      expect(line.indexOf('\n')).toBe(line.length - 1);
    }
    expect(lines.map((l) => (JSON.parse(l) as AuditRecord).decisionId)).toEqual(results.map(decisionIdOf));
    expect(lines.map((l) => (JSON.parse(l) as AuditRecord).decision)).toEqual(['allow', 'deny', 'deny', 'deny', 'allow']);
  });

  it('records who called and what was asked for an allow, with the query redacted', async () => {
    const token = await o.h.emulator.issueToken({ appId: reader.clientId });
    const traceId = hex(16);
    const requestId = 'req-audit-allow-0001';
    const result = await o.h.check({
      token,
      method: 'POST',
      host: 'Orders.Example.com',
      path: '/orders/42?code=query-secret-value&state=xyz',
      headers: { 'x-request-id': requestId, traceparent: traceparent(traceId, hex(8)) },
    });
    allowance(result);
    const id = decisionIdOf(result);
    const span = await checkSpan(o, id);
    const line = o.auditLines.find((l) => l.includes(id)) ?? '';
    expect(line).not.toContain('query-secret-value');

    const record = auditRecord(o, id);
    expect(Object.keys(record).sort()).toEqual([...AUDIT_KEYS].sort());
    expect(Number.isNaN(Date.parse(record.time))).toBe(false);
    expect(record).toMatchObject({
      type: 'entra_authz.decision',
      decisionId: id,
      decision: 'allow',
      reason: 'allowed',
      rule: 'orders-read',
      dryRun: false,
      wouldDeny: null,
      oid: o.h.emulator.oidFor(reader.clientId),
      tid: DEMO.tenantId,
      appId: reader.clientId,
      tokenType: 'app',
      tokenVersion: '2.0',
      roles: ['Orders.Read'],
      scopes: [],
      uti: claimsOf(token)['uti'],
      tokenHash: createHash('sha256').update(token).digest('base64url'),
      method: 'POST',
      host: 'orders.example.com',
      path: '/orders/42',
      query: REDACTED,
      sourceAddress: '127.0.0.1',
      sourcePort: 50_000,
      peerPrincipal: null,
      peerCertFingerprint: null,
      requestId,
      traceId,
      spanId: span.spanContext().spanId,
      cacheHit: false,
    });
    expect(typeof record.uti).toBe('string');
    expect(record.requirements.length).toBeGreaterThanOrEqual(1);
    for (const r of record.requirements) expect(r.met).toBe(true);
    expect(record.durationMs).toBeGreaterThanOrEqual(0);
    expect(record.durationMs).toBeLessThan(10_000);
  });

  it('records the failed requirement of a deny, and nulls for what an unauthenticated deny does not know', async () => {
    const token = await o.h.emulator.issueToken({ appId: reader.clientId });
    const requestId = 'req-audit-deny-0001';
    const result = await o.h.check({ token, method: 'DELETE', path: '/orders/42', contextExtensions: { policy: 'orders-write' }, headers: { 'x-request-id': requestId } });
    expect(denial(result).reason).toBe('missing_role');
    const record = auditRecord(o, decisionIdOf(result));
    expect(record).toMatchObject({
      decision: 'deny',
      reason: 'missing_role',
      rule: 'orders-write',
      dryRun: false,
      oid: o.h.emulator.oidFor(reader.clientId),
      tid: DEMO.tenantId,
      appId: reader.clientId,
      tokenType: 'app',
      tokenHash: createHash('sha256').update(token).digest('base64url'),
      method: 'DELETE',
      path: '/orders/42',
      query: null,
      requestId,
    });
    expect(record.detail).toEqual(expect.any(String));
    expect(record.requirements.some((r) => !r.met)).toBe(true);
    expect(record.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(record.spanId).toMatch(/^[0-9a-f]{16}$/);

    const anonymous = await o.h.check({ path: '/orders', headers: { 'x-request-id': 'req-audit-deny-0002' } });
    expect(denial(anonymous).reason).toBe('token_missing');
    expect(auditRecord(o, decisionIdOf(anonymous))).toMatchObject({
      decision: 'deny',
      reason: 'token_missing',
      oid: null,
      tid: null,
      appId: null,
      tokenType: null,
      tokenVersion: null,
      uti: null,
      tokenHash: null,
      roles: [],
      scopes: [],
      requestId: 'req-audit-deny-0002',
    });

    // A token that fails verification is still matchable by its hash (never by its text).
    const expired = await o.h.emulator.issueToken({ issuedAt: o.h.clock.now() / 1000 - 7200, expiresInSeconds: 3600 });
    const rejected = await o.h.check({ token: expired, headers: { 'x-request-id': 'req-audit-deny-0003' } });
    expect(denial(rejected).reason).toBe('token_expired');
    expect(auditRecord(o, decisionIdOf(rejected))).toMatchObject({
      reason: 'token_expired',
      oid: null,
      tokenHash: createHash('sha256').update(expired).digest('base64url'),
    });
  });

  it('escapes newlines and control characters in the path so the record stays one line and parses back', async () => {
    const evilPath =
      '/orders/\n{"type":"entra_authz.decision","decision":"allow","oid":"forged"}\r\n' +
      '\u0000\u001b[31m\u007f\u0085\u2028\u2029\u202e\u200b\ufeff/end';
    const before = o.auditLines.length;
    const result = await o.h.check({ token: await o.h.emulator.issueToken({ appId: reader.clientId }), path: `${evilPath}?q=1` });
    allowance(result);
    const lines = o.auditLines.slice(before);
    expect(lines).toHaveLength(1);
    const line = lines[0] as string;
    const body = line.slice(0, -1);
    expect(line.endsWith('\n')).toBe(true);
    for (const c of ['\n', '\r', '\u0000', '\u001b', '\u007f', '\u0085', '\u2028', '\u2029', '\u202e', '\u200b', '\ufeff']) {
      expect(body.includes(c), `raw U+${c.charCodeAt(0).toString(16).padStart(4, '0')} in the audit line`).toBe(false);
    }
    const record = JSON.parse(line) as AuditRecord;
    expect(record.path).toBe(evilPath);
    expect(record.query).toBe(REDACTED);
    expect(record.decisionId).toBe(decisionIdOf(result));
  });
});

// ---------------------------------------------------------------------------------------------
// 4. No token text anywhere
// ---------------------------------------------------------------------------------------------

describe('no credential leaks into telemetry', () => {
  let o: Observed | undefined;
  afterEach(async () => {
    await o?.close();
    o = undefined;
  });

  it('keeps token texts, their signatures and cookie values out of logs, spans, metrics and audit lines', async () => {
    o = await startObserved();
    await o.h.waitServing();
    const h = o.h;
    const b64 = (bytes: number): string => randomBytes(bytes).toString('base64url');
    const cookieValue = `leakcanary-cookie-${b64(24)}`;

    const valid = await h.emulator.issueToken({ appId: reader.clientId });
    const other = await h.emulator.issueToken({ appId: writer.clientId });
    const [vh, vp] = valid.split('.');
    const tokens = {
      valid,
      other,
      expired: await h.emulator.issueToken({ issuedAt: h.clock.now() / 1000 - 7200, expiresInSeconds: 3600 }),
      malformed: `${b64(24)}.${b64(48)}.${b64(64)}`,
      oversized: await h.emulator.issueToken({ claims: { padding: 'x'.repeat(70_000) } }),
      unknownKey: await h.emulator.signWithUnpublishedKey(),
      // Another token's signature reversed, its last character then made canonical (unused bits zero).
      badSignature: `${vh}.${vp}.${(other.split('.')[2] ?? '').split('').reverse().join('').slice(0, -1)}A`,
    };

    const traced = (extra: Record<string, string> = {}): Record<string, string> => ({ traceparent: traceparent(hex(16), hex(8)), ...extra });
    const cases: [CheckRequestOptions, string][] = [
      [{ token: tokens.valid, headers: traced() }, 'allowed'],
      [{ token: tokens.valid, headers: traced({ cookie: `session=${cookieValue}; theme=dark` }) }, 'allowed'],
      [{ token: tokens.valid, path: `/orders?access_token=${tokens.other}`, headers: traced() }, 'allowed'],
      [{ token: tokens.valid, contextExtensions: { policy: 'orders-write' }, headers: traced({ cookie: `session=${cookieValue}` }) }, 'missing_role'],
      [{ token: tokens.expired, headers: traced() }, 'token_expired'],
      [{ token: tokens.malformed, headers: traced() }, 'token_malformed'],
      [{ token: tokens.oversized, headers: traced() }, 'token_too_large'],
      [{ token: tokens.unknownKey, headers: traced() }, 'token_key_unknown'],
      [{ token: tokens.badSignature, headers: traced() }, 'token_signature_invalid'],
      [{ headers: traced({ authorization: `Bearer ${tokens.valid},Bearer ${tokens.other}` }) }, 'token_multiple'],
      [{ headers: traced({ authorization: `Basic ${tokens.valid}`, cookie: cookieValue }) }, 'token_scheme_unsupported'],
      [{ headers: traced({ cookie: `session=${cookieValue}` }) }, 'token_missing'],
    ];
    const reasons: string[] = [];
    for (const [request] of cases) {
      const result = await h.check(request);
      if (result.kind !== 'response') throw new Error(`RPC error ${result.code}`);
      reasons.push(result.response.status?.code ? (result.response.status.message ?? '') : 'allowed');
    }
    // Each case exercised the path it was meant to (a leak test that only ever hit one branch proves little).
    expect(reasons).toEqual(cases.map(([, expected]) => expected));

    // Everything telemetry produced.
    const metricsText = (await o.admin('/metrics')).body;
    await o.telemetry.tracing.forceFlush();
    const spans = o.spans().map((s) =>
      JSON.stringify({
        name: s.name,
        attributes: s.attributes,
        events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
        status: s.status,
        links: s.links.map((l) => l.attributes),
      }),
    );
    const haystacks: [string, string[]][] = [
      ['log', o.logLines],
      ['span', spans],
      ['metrics', [metricsText]],
      ['audit', o.auditLines],
    ];
    // The haystacks really hold the checks' telemetry.
    expect(o.auditLines).toHaveLength(cases.length);
    expect(spans.filter((s) => s.includes(SPAN_CHECK))).toHaveLength(cases.length);
    expect(o.logLines.length).toBeGreaterThan(0);
    for (const reason of ['token_expired', 'token_too_large', 'token_signature_invalid']) expect(metricsText).toContain(reason);

    const needles = new Map<string, string>([['cookie value', cookieValue]]);
    for (const [name, token] of Object.entries(tokens)) {
      needles.set(`${name} token`, token);
      const [, payload, signature] = token.split('.');
      if (payload !== undefined && payload.length >= 16) needles.set(`${name} payload`, payload.slice(0, 64));
      if (signature !== undefined && signature.length >= 16) needles.set(`${name} signature`, signature);
    }
    const leaks: string[] = [];
    for (const [where, lines] of haystacks) {
      for (const line of lines) {
        for (const [what, needle] of needles) if (line.includes(needle)) leaks.push(`${what} in ${where}: ${line.slice(0, 200)}`);
      }
    }
    expect(leaks).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. A broken audit destination
// ---------------------------------------------------------------------------------------------

describe('an unwritable audit file', () => {
  let dir: string | undefined;
  let emulator: EntraEmulator | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await emulator?.close();
    emulator = undefined;
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('is reported loudly, counted as dropped, and checks keep being answered (as serve wires it)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'entra-authz-audit-dir-'));
    const stderrLines: string[] = [];
    const realWrite = process.stderr.write.bind(process.stderr);
    vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      if (text.includes('AUDIT LOG FAILURE')) {
        stderrLines.push(text);
        return true;
      }
      return (realWrite as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write);

    emulator = await startEntraEmulator({ keyPairs: sharedKeyPairs() });
    const config: Config = {
      ...harnessConfig(emulator.url),
      // The audit "file" is a directory: opening it for append fails with EISDIR.
      telemetry: telemetrySchema.parse({ admin: { listen: '127.0.0.1:0' }, audit: { sink: 'file', file: dir } } satisfies TelemetryConfigInput),
    };
    const logLines: string[] = [];
    const service = await startService(config, memoryLogger(logLines));
    const client = createAuthorizationClient(service.app.address, credentials.createInsecure());
    const check = (opts: CheckRequestOptions): Promise<CheckResult> =>
      new Promise((resolve) => {
        client.Check(envoyCheckRequest(opts), (err, res) =>
          resolve(err ? { kind: 'error', code: err.code, details: err.details } : { kind: 'response', response: res ?? {} }),
        );
      });
    try {
      await vi.waitFor(
        () => {
          if (!service.app.isServing()) throw new Error('keys not loaded yet');
          if (stderrLines.length === 0) throw new Error('no failure reported yet');
        },
        { timeout: 10_000, interval: 10 },
      );
      expect(stderrLines).toHaveLength(1);
      expect(stderrLines[0]).toContain(dir);
      expect(stderrLines[0]).toMatch(/EISDIR|illegal operation on a directory/);
      expect(stderrLines[0]).toContain('DROPPED (checks continue)');

      const droppedBefore = service.telemetry.audit.stats.dropped;
      const token = await emulator.issueToken({ appId: reader.clientId });
      for (let i = 0; i < 3; i++) allowance(await check({ token }));
      expect(denial(await check({})).reason).toBe('token_missing');
      expect(denial(await check({ token, contextExtensions: { policy: 'orders-write' } })).reason).toBe('missing_role');

      expect(service.telemetry.audit.stats.dropped - droppedBefore).toBe(5);
      const samples = await metricSamples({ admin: (p) => httpGet(`${service.telemetry.admin.url}${p}`) });
      expect(value(samples, METRIC.auditDropped)).toBeGreaterThanOrEqual(5);
      expect(value(samples, METRIC.decisions, { decision: 'allow', reason: 'allowed' })).toBe(3);
      // Reported once, not once per record.
      expect(stderrLines).toHaveLength(1);
      expect((await httpGet(`${service.telemetry.admin.url}/readyz`)).status).toBe(200);
    } finally {
      client.close();
      await service.stop();
    }
  });
});
