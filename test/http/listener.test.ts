import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tlsListenerSchema, type TlsListenerConfigInput } from '../../src/config/schema-mtls.js';
import type { HttpRuntime } from '../../src/server/http/handler.js';
import { startHttpServer, type HttpServer } from '../../src/server/http/listener.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createLeaf, createTestPki, ENVOY_SPIFFE, type TestPki } from '../fixtures/certs.js';
import { recordingRuntime, send } from './support.js';

const servers: HttpServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close(1000);
});

async function start(runtime: HttpRuntime, tls?: TlsListenerConfigInput): Promise<string> {
  const server = await startHttpServer(
    runtime,
    { listen: '127.0.0.1:0', tls: tls && tlsListenerSchema.parse(tls) },
    { log: silentLogger(), maxHeaderBytes: 16 * 1024 },
  );
  servers.push(server);
  return `${tls ? 'https' : 'http'}://${server.address}`;
}

const nginxHeaders = (uri: string): [string, string][] => [
  ['X-Original-Method', 'GET'],
  ['X-Original-URI', uri],
  ['X-Original-Host', 'shop.example.com'],
];

describe('HTTP authorization listener', () => {
  it('allows with 200 and identity headers, and tells Envoy which client-sent identity headers to remove', async () => {
    const { runtime, seen } = recordingRuntime();
    const base = await start(runtime);
    const reply = await send(`${base}/envoy/orders/7?x=1`, { method: 'POST', headers: [['Host', 'shop.example.com'], ['Authorization', 'Bearer good']] });
    expect(reply.status).toBe(200);
    expect(reply.headers['x-entra-oid']).toBe('oid-good');
    expect(reply.headers['x-entra-decision-id']).toBe('d-1');
    // An app token has no scopes: a client-sent x-entra-scopes must not reach the upstream.
    expect(reply.headers['x-envoy-auth-headers-to-remove']).toContain('x-entra-scopes');
    expect(seen[0]).toMatchObject({ ok: true, request: { method: 'POST', path: '/orders/7', query: 'x=1', host: 'shop.example.com' } });
  });

  it('denies with 401 and a Bearer challenge when no token is sent', async () => {
    const base = await start(recordingRuntime().runtime);
    const reply = await send(`${base}/forward-auth`, { headers: [['X-Forwarded-Method', 'GET'], ['X-Forwarded-Uri', '/orders'], ['X-Forwarded-Host', 'shop']] });
    expect(reply.status).toBe(401);
    expect(reply.headers['www-authenticate']).toMatch(/^Bearer realm="orders"/);
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'token_missing', decision_id: 'd-1' });
  });

  it('hands the runtime both Authorization headers a client sent, so it can refuse them', async () => {
    const { runtime, seen } = recordingRuntime();
    const base = await start(runtime);
    const reply = await send(`${base}/nginx`, { headers: [...nginxHeaders('/orders'), ['Authorization', 'Bearer good'], ['Authorization', 'Bearer other']] });
    expect(reply.status).toBe(403); // token_multiple is a 400, which nginx would turn into a 500
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'token_multiple' });
    expect(seen[0]?.ok && seen[0].request.headers.get('authorization')).toEqual(['Bearer good', 'Bearer other']);
  });

  it('denies an absolute original URL as request_malformed: 403 for nginx (which turns 400 into 500), 400 for forward auth', async () => {
    const { runtime, seen } = recordingRuntime();
    const base = await start(runtime);
    const nginx = await send(`${base}/nginx`, { headers: [...nginxHeaders('https://evil.example/admin'), ['Authorization', 'Bearer good']] });
    expect(nginx.status).toBe(403);
    expect(JSON.parse(nginx.body)).toMatchObject({ error: 'request_malformed' });
    expect(seen[0]).toEqual({ ok: false, shape: 'nginx', detail: 'the original URI is absolute, not a path' });
    const forwarded = await send(`${base}/forward-auth`, { headers: [['X-Forwarded-Method', 'GET'], ['X-Forwarded-Host', 'shop']] });
    expect(forwarded.status).toBe(400);
  });

  it('denies headers too large for the parser with request_malformed and keeps serving', async () => {
    const base = await start(recordingRuntime().runtime);
    const huge = await send(`${base}/nginx`, { headers: [...nginxHeaders('/orders'), ['Authorization', `Bearer ${'a'.repeat(200 * 1024)}`]] });
    expect(huge.status).toBe(400);
    expect(JSON.parse(huge.body)).toMatchObject({ error: 'request_malformed' });
    const next = await send(`${base}/nginx`, { headers: [...nginxHeaders('/orders'), ['Authorization', 'Bearer good']] });
    expect(next.status).toBe(200);
  });

  it('denies with 403 internal_error when the runtime fails: neither an allow nor a 5xx a proxy may fail open on', async () => {
    const base = await start(recordingRuntime({ fail: true }).runtime);
    const reply = await send(`${base}/envoy/orders`, { headers: [['Authorization', 'Bearer good']] });
    expect(reply.status).toBe(403);
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'internal_error' });
  });

  it('answers /readyz with 503 until the runtime serves, and /healthz with 200', async () => {
    const base = await start(recordingRuntime({ serving: false }).runtime);
    expect((await send(`${base}/readyz`)).status).toBe(503);
    expect((await send(`${base}/healthz`)).status).toBe(200);
  });
});

describe('HTTP authorization listener over mTLS', () => {
  let pki: TestPki;
  let dir: string;
  let files: { cert: string; key: string; ca: string };
  beforeAll(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(join(tmpdir(), 'entra-authz-http-tls-'));
    files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
    await writeFile(files.cert, pki.server.certPem);
    await writeFile(files.key, pki.server.keyPem);
    await writeFile(files.ca, pki.ca.certPem);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const mtls = () => ({ certFile: files.cert, keyFile: files.key, caFile: files.ca, requireClientCert: true, allowedClients: [ENVOY_SPIFFE] });
  const request = (base: string, client?: { certPem: string; keyPem: string }) =>
    send(`${base}/nginx`, {
      headers: [...nginxHeaders('/orders'), ['Authorization', 'Bearer good']],
      tls: { ca: pki.ca.certPem, servername: 'localhost', ...(client ? { cert: client.certPem, key: client.keyPem } : {}) },
    });

  it('answers a proxy whose client certificate is on the allow-list', async () => {
    const base = await start(recordingRuntime().runtime, mtls());
    expect((await request(base, pki.envoyClient)).status).toBe(200);
  });

  it('refuses the connection of a client without a certificate or not on the allow-list', async () => {
    const base = await start(recordingRuntime().runtime, mtls());
    await expect(request(base)).rejects.toThrow();
    const stranger = await createLeaf(pki.ca, { subject: 'CN=stranger', uris: ['spiffe://cluster.local/ns/x/sa/stranger'], usage: 'client' });
    await expect(request(base, stranger)).rejects.toThrow();
  });
});
