import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createEntraHttpClient } from '../../../src/authn/entra/http.js';
import { createKeyStore, type KeyStoreLogEvent } from '../../../src/authn/entra/keystore.js';
import { createCa, createLeaf } from '../../fixtures/certs.js';
import { entraConfig, TENANT_A } from './fixtures.js';

/** Key-load failures over real sockets say why: refused, DNS, TLS, timeout or HTTP status. */

const servers: Server[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.on('connection', (s: Socket) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Loads keys from `authority` with the store's own HTTP client; returns the failure it reports. */
async function loadFrom(authority: string, fetchTimeoutMs = 2000) {
  const logs: KeyStoreLogEvent[] = [];
  const keys = createKeyStore({
    config: entraConfig({ authority, tenants: [TENANT_A], tokenVersions: ['2.0'], keys: { fetchTimeoutMs } }),
    now: Date.now,
    schedule: () => () => {},
    log: (e) => logs.push(e),
  });
  await keys.start();
  const { lastError } = keys.stats()[0] ?? {};
  const readiness = keys.readiness();
  keys.stop();
  return { lastError, readiness, logs };
}

describe('key-load failures', () => {
  it('says the connection was refused', async () => {
    const port = await listen(createHttpServer());
    await new Promise((r) => servers.pop()?.close(r));
    const r = await loadFrom(`http://127.0.0.1:${port}`);
    expect(r.lastError?.kind).toBe('connection_refused');
    expect(r.readiness.problems[0]).toMatch(/no keys \(connection_refused: .*connection refused/);
    expect(r.logs.find((l) => l.msg === 'key set load failed')).toMatchObject({ reason: 'connection_refused' });
  });

  it('says the DNS lookup failed', async () => {
    const r = await loadFrom('http://entra-authz-test.invalid');
    expect(r.lastError?.kind).toBe('dns');
    expect(r.lastError?.message).toMatch(/DNS lookup failed \(ENOTFOUND|EAI_AGAIN/);
  });

  it('says TLS failed when the authority presents an untrusted certificate', async () => {
    const ca = await createCa('untrusted test CA');
    const leaf = await createLeaf(ca, { subject: 'CN=localhost', dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });
    const port = await listen(createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem }, (_, res) => res.end('{}')));
    const r = await loadFrom(`https://127.0.0.1:${port}`);
    expect(r.lastError?.kind).toBe('tls');
  });

  it('says which HTTP status Entra answered', async () => {
    const port = await listen(createHttpServer((_, res) => res.writeHead(503).end('busy')));
    const r = await loadFrom(`http://127.0.0.1:${port}`);
    expect(r.lastError).toMatchObject({ kind: 'http_status' });
    expect(r.lastError?.message).toMatch(/answered HTTP 503/);
  });

  it('says the fetch timed out when the endpoint never answers', async () => {
    const port = await listen(createHttpServer(() => {}));
    const startedAt = Date.now();
    const r = await loadFrom(`http://127.0.0.1:${port}`, 200);
    expect(Date.now() - startedAt).toBeLessThan(2000);
    expect(r.lastError).toMatchObject({ kind: 'timeout' });
  });

  it("bounds a request by undici's header timeout even without an abort signal", async () => {
    const port = await listen(createHttpServer(() => {}));
    const client = createEntraHttpClient(200);
    const startedAt = Date.now();
    const error = await client.fetch(`http://127.0.0.1:${port}/`).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(Date.now() - startedAt).toBeLessThan(2000);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('UND_ERR_HEADERS_TIMEOUT');
    await client.close();
  });
});
