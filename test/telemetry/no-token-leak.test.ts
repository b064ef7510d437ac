import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { buildAuditRecord, createAuditSink } from '../../src/telemetry/audit.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { startAdminServer } from '../../src/telemetry/admin.js';
import { PHASE, startTracing } from '../../src/telemetry/tracing.js';
import { otelEnv } from './otel-env.js';
import { allow, deny, httpGet, requestView } from './fixtures.js';

// A token-shaped secret: header.payload.signature, each part distinctive enough to search for.
const HEADER = 'eyJhbGciOiJSUzI1NiIsImtpZCI6IkxFQUtURVNUIn0';
const PAYLOAD = 'eyJzdWIiOiJsZWFrLXRlc3Qtc3ViamVjdCIsInNlY3JldCI6InMzY3IzdCJ9';
const SIGNATURE = 'TOKENSIGNATURE_leakcanary_9f8e7d6c5b4a';
const TOKEN = `${HEADER}.${PAYLOAD}.${SIGNATURE}`;
const COOKIE_SECRET = 'sessioncookie_leakcanary_0123456789';

const NEEDLES = [TOKEN, HEADER, PAYLOAD, SIGNATURE, COOKIE_SECRET, 'leakcanary'];

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('no token text in telemetry', () => {
  it('keeps the Authorization, Cookie and query token out of audit lines, spans, exported traces and metrics', async () => {
    const request = requestView({
      path: '/orders/42',
      query: `access_token=${TOKEN}`,
      headerList: [
        ['authorization', `Bearer ${TOKEN}`],
        ['cookie', `session=${COOKIE_SECRET}; theme=dark`],
        ['x-request-id', 'req-leak-1'],
        ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ],
    });
    const captured: string[] = [];

    // Traces: in memory, and through a real OTLP/HTTP export.
    const otlpBodies: string[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        otlpBodies.push(Buffer.concat(chunks).toString('utf8'));
        res.end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const memory = new InMemorySpanExporter();
    otelEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    });
    const tracing = startTracing({
      serviceName: 'entra-authz',
      spanProcessors: [new SimpleSpanProcessor(memory)],
    });

    // Metrics over HTTP.
    const metrics = createMetrics();
    const admin = await startAdminServer({ listen: '127.0.0.1:0', isReady: () => true, registry: metrics.registry });

    // Audit to a file and to a line consumer.
    const dir = mkdtempSync(join(tmpdir(), 'entra-authz-leak-'));
    const file = join(dir, 'audit.log');
    const fileSink = createAuditSink({ sink: { file }, sampleAllows: 1 });
    const memorySink = createAuditSink({ sink: { write: (l) => captured.push(l) }, sampleAllows: 1 });

    let spanCount = 0;
    try {
      for (const decision of [allow(), deny(), deny({ reason: 'token_signature_invalid', identity: undefined, rule: undefined })]) {
        const span = tracing.checks.startCheckFrom(request.headers, () => ({ authorization: `Bearer ${TOKEN}` }));
        // A library error quoting the token must not reach the span either.
        await span
          .phase(PHASE.verifyToken, () => Promise.reject(new Error(`cannot verify ${TOKEN}`)))
          .catch(() => undefined);
        span.end(decision, { cacheHit: false, dryRun: false });
        metrics.decision(decision, 0.001);
        const record = buildAuditRecord({
          decision,
          request,
          durationMs: 1,
          tokenCacheHit: false,
          dryRun: false,
          traceId: span.traceId,
          spanId: span.spanId,
          now: new Date(),
          redactQuery: true,
        });
        fileSink.write(record);
        memorySink.write(record);
      }
      await fileSink.close();
      captured.push(readFileSync(file, 'utf8'));
      // Read the in-memory spans before shutdown, which clears that exporter.
      spanCount = memory.getFinishedSpans().length;
      for (const s of memory.getFinishedSpans()) {
        captured.push(JSON.stringify({ name: s.name, attributes: s.attributes, events: s.events, status: s.status, links: s.links }));
        captured.push(JSON.stringify(s.resource.attributes));
      }
      await tracing.shutdown();
      captured.push(...otlpBodies);
      captured.push((await httpGet(`${admin.url}/metrics`)).body);
    } finally {
      await admin.close();
      await new Promise((r) => receiver.close(r));
      rmSync(dir, { recursive: true, force: true });
    }

    // The capture is real: it holds the records, spans and metrics of these checks.
    const all = captured.join('\n');
    expect(all).toContain('req-leak-1');
    expect(all).toContain('token_signature_invalid');
    expect(all).toContain('entra_authz_decisions_total');
    expect(otlpBodies.length).toBeGreaterThan(0);
    expect(spanCount).toBe(6);

    for (const needle of NEEDLES) {
      const hits = captured.filter((c) => c.includes(needle));
      expect(hits, `found ${JSON.stringify(needle)} in telemetry`).toEqual([]);
    }
  });
});
