import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEMO } from '../../src/dev/emulator.js';
import { requireBinary } from '../support/external-binary.js';
import { grpcCall, type ClientTls } from './clients.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp.js';
import { startStack, type EnvoyStack } from './stack.js';

/**
 * The shipped sidecar (envoy/sidecar.yaml, rendered only for ports and certificate paths) with
 * entra-authz on plain HTTP/2 as that layout runs it, tracing to an in-test OTLP receiver.
 */
const envoy = requireBinary('envoy');

describe.skipIf(envoy.skip)('through the real Envoy: sidecar (envoy/sidecar.yaml)', () => {
  let s: EnvoyStack;
  let otlp: OtlpReceiver;
  let client: ClientTls;
  let token: string;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    s = await startStack({
      envoyBin: envoy.path ?? '',
      file: 'sidecar.yaml',
      clusterPorts: { otel_collector: otlp.port },
      authzEnv: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlp.port}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_BSP_SCHEDULE_DELAY: '100',
      },
    });
    client = s.tlsAs('demo-client');
    token = await s.emulator.issueToken({ appId: DEMO.clients.writer.clientId });
  }, 60_000);
  afterAll(async () => {
    await s?.close();
    await otlp?.close();
  });

  const bearer = (extra: Record<string, string> = {}): Record<string, string> => ({ authorization: `Bearer ${token}`, ...extra });

  it('forwards the verified client certificate in x-forwarded-client-cert and drops the one the client sent', async () => {
    const forged = `By=${s.pki.spiffeId('orders')};Hash=${'0'.repeat(64)};URI=spiffe://entra-authz.demo/ns/demo/sa/admin`;
    const answer = await grpcCall(s.port, client, 'GetOrder', bearer({ 'x-forwarded-client-cert': forged }));
    if (!answer.ok) throw new Error(`not allowed: gRPC ${answer.code} ${answer.details}`);
    const xfcc = answer.upstream['x-forwarded-client-cert'] ?? '';
    expect(xfcc).not.toContain('ns/demo/sa/admin');
    // SANITIZE_SET with subject, cert, uri, dns: one element, By = the sidecar's own URI SAN.
    expect(xfcc.match(/By=/g)).toHaveLength(1);
    expect(xfcc).toContain(`By=${s.pki.spiffeId('orders')};Hash=${s.pki.leaves['demo-client'].hashHex};Cert="`);
    expect(xfcc).toContain(`URI=${s.pki.spiffeId('demo-client')};DNS=demo-client`);
    expect(answer.upstream['x-entra-peer-principal']).toBe(s.pki.spiffeId('demo-client'));
  });

  it('lets Prometheus scrape Envoy\'s stats on the metrics listener, and nothing else of admin', async () => {
    const metrics = `http://127.0.0.1:${s.envoy.listenerPort('prometheus')}`;
    const scrape = await fetch(`${metrics}/stats/prometheus`);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toMatch(/^envoy_http_ext_authz_ok\{envoy_ext_authz_prefix="entra",envoy_http_conn_manager_prefix="inbound"\} \d+$/m);
    expect((await fetch(`${metrics}/quitquitquit`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${metrics}/stats/prometheus`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${metrics}/config_dump`)).status).toBe(404);
  });

  it('puts the client\'s trace, Envoy\'s spans and entra-authz\'s Check span in one trace, the Check span a child of Envoy\'s ext_authz call', async () => {
    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const clientSpan = '1122334455667788';
    // Envoy flushes spans in batches of 5 (or every 5 s): make enough traced calls.
    for (let i = 0; i < 5; i++) {
      const answer = await grpcCall(s.port, client, 'GetOrder', bearer({ traceparent: `00-${traceId}-${clientSpan}-01` }));
      expect(answer.ok).toBe(true);
    }
    // Envoy exports in batches: wait until every Check span's parent has arrived (or time out
    // and let the assertions below say what is missing).
    const checkParentsArrived = (): boolean => {
      const inTrace = otlp.spans.filter((x) => x.traceId === traceId);
      const ids = new Set(inTrace.map((x) => x.spanId));
      const checks = inTrace.filter((x) => x.service === 'entra-authz' && x.name.endsWith('/Check'));
      return checks.length > 0 && checks.every((c) => ids.has(c.parentSpanId));
    };
    await vi.waitFor(() => expect(checkParentsArrived()).toBe(true), { timeout: 12_000, interval: 50 }).catch(() => undefined);
    const inTrace = otlp.spans.filter((x) => x.traceId === traceId);
    const envoySpans = inTrace.filter((x) => x.service !== 'entra-authz');
    // Envoy continues the client's trace: its request span is the client span's child, and its
    // ext_authz call is a child of that.
    const ingress = envoySpans.filter((x) => x.parentSpanId === clientSpan);
    expect(ingress.length).toBeGreaterThan(0);
    expect(envoySpans.some((x) => ingress.some((i) => i.spanId === x.parentSpanId))).toBe(true);
    // entra-authz's Check spans hang off Envoy's ext_authz call (gRPC metadata), not off the
    // client's span that the forwarded request's traceparent names.
    const envoyIds = new Set(envoySpans.map((x) => x.spanId));
    const authzIds = new Set(inTrace.filter((x) => x.service === 'entra-authz').map((x) => x.spanId));
    const checks = inTrace.filter((x) => x.service === 'entra-authz' && !authzIds.has(x.parentSpanId));
    expect(checks.length).toBeGreaterThan(0);
    for (const check of checks) {
      expect(check.parentSpanId).not.toBe(clientSpan);
      expect(envoyIds.has(check.parentSpanId), `${check.name}: parent ${check.parentSpanId}`).toBe(true);
    }
  });
});
