import { afterEach, describe, expect, it } from 'vitest';
import { AggregatorRegistry } from 'prom-client';
import { CHECK_DURATION_BUCKETS, METRIC, createMetrics } from '../../src/telemetry/metrics.js';
import { parseListen } from '../../src/config/listen.js';
import { startAdminServer, type AdminServer } from '../../src/telemetry/admin.js';
import { allow, deny, findSample, httpGet, parsePrometheus, TENANT } from './fixtures.js';

const servers: AdminServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function admin(isReady: Parameters<typeof startAdminServer>[0]['isReady'] = () => true) {
  const metrics = createMetrics({ processMetrics: false, now: () => 1_700_000_000_000 });
  const server = await startAdminServer({ listen: '127.0.0.1:0', isReady, registry: metrics.registry });
  servers.push(server);
  return { metrics, server };
}

describe('/metrics', () => {
  it('serves decisions, durations, cache, key fetches, keys loaded and reloads in Prometheus text format', async () => {
    const { metrics, server } = await admin();
    metrics.decision(allow(), 0.00004);
    metrics.decision(allow(), 0.0003);
    metrics.decision(deny(), 0.002);
    metrics.decision(deny({ reason: 'token_expired', identity: undefined }), 0.0001);
    metrics.decision(allow({ dryRun: { wouldDeny: 'missing_role', detail: 'lacks Orders.Admin' } }), 0.0002);
    metrics.cache(true);
    metrics.cache(true);
    metrics.cache(false);
    metrics.keyFetch('jwks', 'success', 0.12);
    metrics.keyFetch('discovery', 'timeout', 5);
    metrics.keysLoaded(TENANT, '2.0', 3);
    metrics.keysLoaded(TENANT, '2.0', 4);
    metrics.configReload('success');
    metrics.configReload('failure');
    metrics.auditDropped(2);

    const res = await httpGet(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parsePrometheus(res.body);

    expect(findSample(samples, METRIC.decisions, { decision: 'allow', reason: 'allowed' })?.value).toBe(3);
    expect(findSample(samples, METRIC.dryRunDenials, { reason: 'missing_role' })?.value).toBe(1);
    expect(findSample(samples, METRIC.decisions, { decision: 'deny', reason: 'missing_role' })?.value).toBe(1);
    expect(findSample(samples, METRIC.decisions, { decision: 'deny', reason: 'token_expired' })?.value).toBe(1);

    const bucket = (le: string, decision = 'allow') =>
      findSample(samples, `${METRIC.checkDuration}_bucket`, { decision, le })?.value;
    expect(bucket('0.00005')).toBe(1); // the first bucket is 50 µs
    expect(bucket('0.0005')).toBe(3);
    expect(bucket('+Inf')).toBe(3);
    expect(findSample(samples, `${METRIC.checkDuration}_count`, { decision: 'deny' })?.value).toBe(2);
    expect(findSample(samples, `${METRIC.checkDuration}_sum`, { decision: 'deny' })?.value).toBeCloseTo(0.0021, 8);
    expect(CHECK_DURATION_BUCKETS[0]).toBe(0.00005);

    expect(findSample(samples, METRIC.cacheLookups, { result: 'hit' })?.value).toBe(2);
    expect(findSample(samples, METRIC.cacheLookups, { result: 'miss' })?.value).toBe(1);
    expect(findSample(samples, METRIC.keyFetches, { kind: 'jwks', result: 'success' })?.value).toBe(1);
    expect(findSample(samples, METRIC.keyFetches, { kind: 'discovery', result: 'timeout' })?.value).toBe(1);
    expect(findSample(samples, `${METRIC.keyFetchDuration}_count`, { kind: 'jwks' })?.value).toBe(1);
    expect(findSample(samples, METRIC.keysLoaded, { tenant: TENANT, version: '2.0' })?.value).toBe(4);
    expect(findSample(samples, METRIC.configReloads, { result: 'success' })?.value).toBe(1);
    expect(findSample(samples, METRIC.configReloads, { result: 'failure' })?.value).toBe(1);
    expect(findSample(samples, METRIC.configLastReloadSuccess)?.value).toBe(1_700_000_000);
    expect(findSample(samples, METRIC.auditDropped)?.value).toBe(2);

    // Every family is documented with HELP and the right TYPE.
    expect(res.body).toContain(`# TYPE ${METRIC.decisions} counter`);
    expect(res.body).toContain(`# TYPE ${METRIC.checkDuration} histogram`);
    expect(res.body).toContain(`# TYPE ${METRIC.keysLoaded} gauge`);
    for (const name of Object.values(METRIC)) expect(res.body).toContain(`# HELP ${name} `);
  });

  it('keeps one keys-loaded series per B2C user flow and per app key set of the same tenant and version', async () => {
    const { metrics, server } = await admin();
    metrics.observeKeySets(() => [
      { tenant: TENANT, version: '2.0', keyCount: 2, userFlow: 'b2c_1_signin' },
      { tenant: TENANT, version: '2.0', keyCount: 0, userFlow: 'b2c_1_reset' },
      { tenant: TENANT, version: '1.0', keyCount: 1, appId: 'app-1' },
      { tenant: TENANT, version: '1.0', keyCount: 3 },
    ]);
    const samples = parsePrometheus((await httpGet(`${server.url}/metrics`)).body);
    expect(findSample(samples, METRIC.keysLoaded, { tenant: TENANT, version: '2.0', user_flow: 'b2c_1_signin' })?.value).toBe(2);
    expect(findSample(samples, METRIC.keysLoaded, { tenant: TENANT, version: '2.0', user_flow: 'b2c_1_reset' })?.value).toBe(0);
    expect(findSample(samples, METRIC.keysLoaded, { tenant: TENANT, version: '1.0', app_id: 'app-1' })?.value).toBe(1);
    expect(samples.filter((s) => s.name === METRIC.keysLoaded && s.labels.version === '1.0' && s.labels.app_id === undefined).map((s) => s.value)).toEqual([3]);
  });

  it('counts Graph group-membership lookups by result', async () => {
    const { metrics, server } = await admin();
    for (const result of ['hit', 'hit', 'miss', 'throttled', 'failed'] as const) metrics.graphLookup(result);
    const samples = parsePrometheus((await httpGet(`${server.url}/metrics`)).body);
    expect(['hit', 'miss', 'throttled', 'failed'].map((result) => findSample(samples, METRIC.graphLookups, { result })?.value)).toEqual([2, 1, 1, 1]);
  });

  it("reads keys loaded from the key store's stats at every scrape and accepts its ok/error words", async () => {
    const { metrics, server } = await admin();
    let stats = [
      { tenant: TENANT, version: '1.0', keyCount: 3, expectedIssuer: undefined },
      { tenant: TENANT, version: '2.0', keyCount: 0, expectedIssuer: undefined, abandonedRefreshes: 2 },
    ];
    metrics.observeKeySets(() => stats);
    metrics.keyFetch('jwks', 'ok', 0.05);
    metrics.keyFetch('jwks', 'error', 0.05);
    let samples = parsePrometheus((await httpGet(`${server.url}/metrics`)).body);
    expect(findSample(samples, METRIC.keysLoaded, { tenant: TENANT, version: '1.0' })?.value).toBe(3);
    expect(findSample(samples, METRIC.keysLoaded, { tenant: TENANT, version: '2.0' })?.value).toBe(0);
    expect(findSample(samples, METRIC.keyRefreshesAbandoned, { tenant: TENANT, version: '2.0' })?.value).toBe(2);
    expect(findSample(samples, METRIC.keyRefreshesAbandoned, { tenant: TENANT, version: '1.0' })?.value).toBe(0);
    expect(findSample(samples, METRIC.keyFetches, { kind: 'jwks', result: 'success' })?.value).toBe(1);
    expect(findSample(samples, METRIC.keyFetches, { kind: 'jwks', result: 'failure' })?.value).toBe(1);

    stats = [{ tenant: TENANT, version: '2.0', keyCount: 5, expectedIssuer: undefined }];
    samples = parsePrometheus((await httpGet(`${server.url}/metrics`)).body);
    expect(findSample(samples, METRIC.keysLoaded, { tenant: TENANT, version: '1.0' })).toBeUndefined();
    expect(findSample(samples, METRIC.keysLoaded, { tenant: TENANT, version: '2.0' })?.value).toBe(5);
  });

  it('exposes cache and reload series at zero before anything happened', async () => {
    const { server } = await admin();
    const samples = parsePrometheus((await httpGet(`${server.url}/metrics`)).body);
    expect(findSample(samples, METRIC.cacheLookups, { result: 'hit' })?.value).toBe(0);
    expect(findSample(samples, METRIC.configReloads, { result: 'failure' })?.value).toBe(0);
  });

  it('labels decisions with the rule that decided, and no rule when none matched', async () => {
    const m = createMetrics({ processMetrics: false });
    m.decision(allow(), 0.001);
    m.decision(deny(), 0.001);
    m.decision(deny({ reason: 'no_matching_rule', rule: undefined, identity: undefined }), 0.001);
    m.decision(allow({ dryRun: { wouldDeny: 'missing_role', detail: '' } }), 0.001);
    const samples = parsePrometheus(await m.registry.metrics());
    expect(findSample(samples, METRIC.decisions, { decision: 'allow', rule: 'orders-read' })?.value).toBe(2);
    expect(findSample(samples, METRIC.decisions, { decision: 'deny', reason: 'missing_role', rule: 'orders-write' })?.value).toBe(1);
    expect(findSample(samples, METRIC.decisions, { reason: 'no_matching_rule' })?.labels['rule']).toBe('');
    expect(findSample(samples, METRIC.dryRunDenials, { reason: 'missing_role', rule: 'orders-read' })?.value).toBe(1);
  });

  it("counts the gRPC status Envoy receives: the CheckResponse's for answered checks, UNAVAILABLE when the RPC fails", async () => {
    const m = createMetrics({ processMetrics: false });
    m.decision(allow(), 0.001);
    m.decision(deny(), 0.001);
    m.decision(deny({ reason: 'token_expired', identity: undefined }), 0.001);
    m.decision(deny({ reason: 'token_missing', identity: undefined }), 0.001);
    m.decision(deny({ kind: 'unavailable', reason: 'keys_unavailable', identity: undefined }), 0.001);
    const samples = parsePrometheus(await m.registry.metrics());
    const count = (code: string) => findSample(samples, METRIC.grpcStatus, { grpc_code: code })?.value;
    expect([count('0'), count('7'), count('16'), count('14')]).toEqual([1, 1, 2, 1]);
    // HTTP-mode checks have no gRPC status.
    m.decision(allow(), 0.001, 'http');
    const after = parsePrometheus(await m.registry.metrics());
    expect(findSample(after, METRIC.grpcStatus, { grpc_code: '0' })?.value).toBe(1);
    expect(findSample(after, METRIC.decisions, { decision: 'allow', mode: 'http', rule: 'orders-read' })?.value).toBe(1);
  });

  it('publishes the version and the Node.js version as build info', async () => {
    const text = await createMetrics({ processMetrics: false, version: '1.2.3' }).registry.metrics();
    const [info] = parsePrometheus(text).filter((s) => s.name === METRIC.buildInfo);
    expect(info).toEqual({ name: METRIC.buildInfo, labels: { version: '1.2.3', node_version: process.version }, value: 1 });
  });

  it('keeps build info at 1 when the metrics of several worker processes are aggregated', async () => {
    const workers = await Promise.all([1, 2].map(() => createMetrics({ processMetrics: false, version: '1.2.3' }).registry.getMetricsAsJSON()));
    const text = await AggregatorRegistry.aggregate(workers).metrics();
    expect(findSample(parsePrometheus(text), METRIC.buildInfo, { version: '1.2.3' })?.value).toBe(1);
  });

  it('keeps instances apart: each has its own registry', () => {
    const a = createMetrics({ processMetrics: false });
    const b = createMetrics({ processMetrics: false });
    a.cache(true);
    expect(a.registry).not.toBe(b.registry);
    return Promise.all([a.registry.metrics(), b.registry.metrics()]).then(([ta, tb]) => {
      expect(findSample(parsePrometheus(ta), METRIC.cacheLookups, { result: 'hit' })?.value).toBe(1);
      expect(findSample(parsePrometheus(tb), METRIC.cacheLookups, { result: 'hit' })?.value).toBe(0);
    });
  });

  it('adds process and Node.js runtime metrics by default', async () => {
    const text = await createMetrics().registry.metrics();
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);
  });

  it('ignores impossible durations instead of corrupting the histogram', async () => {
    const m = createMetrics({ processMetrics: false });
    m.decision(allow(), Number.NaN);
    m.decision(allow(), -1);
    const samples = parsePrometheus(await m.registry.metrics());
    expect(findSample(samples, METRIC.decisions, { decision: 'allow' })?.value).toBe(2);
    expect(findSample(samples, `${METRIC.checkDuration}_count`, { decision: 'allow' })?.value ?? 0).toBe(0);
  });
});

describe('/healthz and /readyz', () => {
  it('answers /healthz while the process lives', async () => {
    const { server } = await admin(() => false);
    const res = await httpGet(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok\n');
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('answers /readyz 200 when ready and 503 with the detail when not', async () => {
    let state: boolean | { ready: boolean; detail: Record<string, unknown> } = { ready: false, detail: { keys: 'loading', tenants: 0 } };
    const { server } = await admin(() => state);
    const notReady = await httpGet(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(JSON.parse(notReady.body)).toEqual({ ready: false, detail: { keys: 'loading', tenants: 0 } });
    state = true;
    const ready = await httpGet(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ ready: true });
  });

  it('treats a readiness check that throws as not ready', async () => {
    const { server } = await admin(() => {
      throw new TypeError('keys not wired');
    });
    const res = await httpGet(`${server.url}/readyz`);
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body)).toEqual({ ready: false, detail: 'readiness check failed: TypeError' });
  });

  it('answers HEAD without a body, 404 for unknown paths and 405 for other methods', async () => {
    const { server } = await admin();
    const head = await httpGet(`${server.url}/healthz`, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect((await httpGet(`${server.url}/metrics?name[]=x`)).status).toBe(200);
    expect((await httpGet(`${server.url}/debug/pprof`)).status).toBe(404);
    const post = await httpGet(`${server.url}/readyz`, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers['allow']).toBe('GET, HEAD');
  });
});

describe('admin listener', () => {
  it('listens on a free port when given port 0 and stops accepting after close', async () => {
    const { server } = await admin();
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.url).not.toMatch(/:0$/);
    await server.close();
    await expect(httpGet(`${server.url}/healthz`)).rejects.toThrow();
    await server.close(); // idempotent
  });

  it('listens on IPv6 loopback in bracket form', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const server = await startAdminServer({ listen: '[::1]:0', isReady: () => true, registry: metrics.registry }).catch(() => undefined);
    // Hosts without IPv6 cannot bind ::1; the parse itself is checked below either way.
    if (server !== undefined) {
      servers.push(server);
      expect(server.url).toMatch(/^http:\/\/\[::1\]:\d+$/);
      expect((await httpGet(`${server.url}/healthz`)).status).toBe(200);
    }
    expect(parseListen('[::1]:9090')).toEqual({ host: '::1', port: 9090 });
  });

  it('refuses a listen address that is not host:port', async () => {
    expect(() => parseListen('9090')).toThrow(/host:port/);
    expect(() => parseListen('0.0.0.0:70000')).toThrow(/host:port/);
    const metrics = createMetrics({ processMetrics: false });
    await expect(startAdminServer({ listen: 'localhost', isReady: () => true, registry: metrics.registry })).rejects.toThrow();
  });

  it('rejects when the port is taken', async () => {
    const { server } = await admin();
    const port = new URL(server.url).port;
    const metrics = createMetrics({ processMetrics: false });
    await expect(startAdminServer({ listen: `127.0.0.1:${port}`, isReady: () => true, registry: metrics.registry })).rejects.toThrow(
      /EADDRINUSE/,
    );
  });
});
