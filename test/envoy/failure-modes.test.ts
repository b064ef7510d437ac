import { createServer, type Http2Server } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEMO, startEntraEmulator, type EntraEmulator } from '../../src/dev/emulator.js';
import type { Obj } from '../deploy/helpers.js';
import { requireBinary } from '../support/external-binary.js';
import { freePort, listenOnLoopback } from '../support/loopback.js';
import { grpcCall, http1, type ClientTls } from './clients.js';
import { startEntraAuthz, type RunningEntraAuthz, type RunningEnvoy } from './processes.js';
import { httpFilterConfig } from './render.js';
import { composeAuthzConfig, startStack, type EnvoyStack } from './stack.js';

/**
 * What an operator meets when the check itself cannot be made, with the shipped sidecar config
 * (envoy/sidecar.yaml: fail closed, status_on_error 503, 0.25 s timeout). Each case runs its own
 * Envoy on the same rendered config; only the entra_authz cluster's port differs, and for the
 * fail-open cases `failure_mode_allow` (+ `failure_mode_allow_header_add`) is switched on.
 */
const envoy = requireBinary('envoy');

const failOpen = (bootstrap: Obj): void => {
  const extAuthz = httpFilterConfig(bootstrap, 'envoy.filters.http.ext_authz');
  extAuthz['failure_mode_allow'] = true;
  extAuthz['failure_mode_allow_header_add'] = true;
};

/** An HTTP/2 server that accepts every call and never answers: entra-authz hung. */
async function startBlackHole(): Promise<{ server: Http2Server; port: number }> {
  const server = createServer();
  server.on('stream', (stream) => stream.on('error', () => undefined));
  return { server, port: await listenOnLoopback(server) };
}

describe.skipIf(envoy.skip)('through the real Envoy: when the check cannot be made (envoy/sidecar.yaml)', () => {
  let s: EnvoyStack;
  let client: ClientTls;
  let token: string;
  let blackHole: { server: Http2Server; port: number };
  let entraDown: EntraEmulator;
  let coldAuthz: RunningEntraAuthz;
  const envoys: Record<'down' | 'slow' | 'downOpen' | 'noKeys' | 'noKeysOpen' | 'upOpen', RunningEnvoy> = {} as never;
  const port = (e: RunningEnvoy): number => e.listenerPort(s.listener);
  const bearer = (): Record<string, string> => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    s = await startStack({ envoyBin: envoy.path ?? '', file: 'sidecar.yaml' });
    client = s.tlsAs('demo-client');
    token = await s.emulator.issueToken({ appId: DEMO.clients.writer.clientId });
    blackHole = await startBlackHole();
    // entra-authz started while Entra is unreachable: no signing keys at all.
    entraDown = await startEntraEmulator();
    entraDown.setAvailable(false);
    coldAuthz = await startEntraAuthz(composeAuthzConfig({ authority: entraDown.url, certDir: s.dir, tls: false }), {}, { waitForKeys: false });
    const nothing = await freePort();
    [envoys.down, envoys.slow, envoys.downOpen, envoys.noKeys, envoys.noKeysOpen, envoys.upOpen] = await Promise.all([
      s.startEnvoy({ clusterPorts: { entra_authz: nothing } }),
      s.startEnvoy({ clusterPorts: { entra_authz: blackHole.port } }),
      s.startEnvoy({ clusterPorts: { entra_authz: nothing }, envoy: failOpen }),
      s.startEnvoy({ clusterPorts: { entra_authz: coldAuthz.port } }),
      s.startEnvoy({ clusterPorts: { entra_authz: coldAuthz.port }, envoy: failOpen }),
      s.startEnvoy({ envoy: failOpen }),
    ]);
  }, 60_000);
  afterAll(async () => {
    await s?.close();
    await coldAuthz?.close();
    await entraDown?.close();
    await new Promise<void>((resolve) => (blackHole ? blackHole.server.close(() => resolve()) : resolve()));
  });

  it('answers 503 (gRPC UNAVAILABLE) when entra-authz is not running, and counts an ext_authz error', async () => {
    const grpc = await grpcCall(port(envoys.down), client, 'GetOrder', bearer());
    expect(grpc).toMatchObject({ ok: false, code: 14 });
    const plain = await http1(port(envoys.down), client, { path: '/anything', headers: bearer() });
    expect(plain.status).toBe(503);
    expect(plain.body).toBe('');
    expect(await envoys.down.stat('http.inbound.ext_authz.entra.error')).toBeGreaterThanOrEqual(2);
    expect(envoys.down.output()).toMatch(/"response_code_details":"ext_authz_error","response_flags":"UAEX"/);
  });

  it('answers 503 once the 0.25 s timeout passes when entra-authz does not answer', async () => {
    const started = Date.now();
    const grpc = await grpcCall(port(envoys.slow), client, 'GetOrder', bearer());
    const elapsed = Date.now() - started;
    expect(grpc).toMatchObject({ ok: false, code: 14 });
    expect(elapsed).toBeGreaterThanOrEqual(240);
    expect(elapsed).toBeLessThan(2_000);
  });

  it('lets the request through, marked x-envoy-auth-failure-mode-allowed, when failing open and entra-authz is down', async () => {
    const grpc = await grpcCall(port(envoys.downOpen), client, 'GetOrder', bearer());
    if (!grpc.ok) throw new Error(`expected a pass, got ${grpc.code} ${grpc.details}`);
    expect(grpc.upstream['x-envoy-auth-failure-mode-allowed']).toBe('true');
    // No identity was established: none of entra-authz's headers are present.
    expect(Object.keys(grpc.upstream).filter((k) => k.startsWith('x-entra-'))).toEqual([]);
    expect(await envoys.downOpen.stat('http.inbound.ext_authz.entra.failure_mode_allowed')).toBeGreaterThanOrEqual(1);
  });

  it('treats entra-authz\'s UNAVAILABLE (Entra down, no keys cached) as an error: 503 when failing closed', async () => {
    const grpc = await grpcCall(port(envoys.noKeys), client, 'GetOrder', bearer());
    expect(grpc).toMatchObject({ ok: false, code: 14 });
    expect(await envoys.noKeys.stat('http.inbound.ext_authz.entra.error')).toBeGreaterThanOrEqual(1);
    expect(await envoys.noKeys.stat('http.inbound.ext_authz.entra.denied')).toBe(0);
    // Audit records are written in batches (by the primary when there are workers): wait for it.
    await vi.waitFor(() => expect(coldAuthz.output()).toContain('"reason":"keys_unavailable"'), { timeout: 3_000, interval: 50 });
  });

  it('lets entra-authz\'s UNAVAILABLE through, marked, when failing open (Envoy 1.40 applies failure_mode_allow to it)', async () => {
    const grpc = await grpcCall(port(envoys.noKeysOpen), client, 'GetOrder', bearer());
    if (!grpc.ok) throw new Error(`expected a pass, got ${grpc.code} ${grpc.details}`);
    expect(grpc.upstream['x-envoy-auth-failure-mode-allowed']).toBe('true');
  });

  it('still denies a bad token with 401 when failing open: a deny is not an error', async () => {
    const grpc = await grpcCall(port(envoys.upOpen), client, 'GetOrder', { authorization: 'Bearer not.a.token' });
    expect(grpc).toMatchObject({ ok: false, code: 16 });
    expect(await envoys.upOpen.stat('http.inbound.ext_authz.entra.failure_mode_allowed')).toBe(0);
  });
});
