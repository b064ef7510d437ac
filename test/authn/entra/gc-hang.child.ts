/**
 * Run by gc-hang.test.ts in a child `node --expose-gc`: loads keys from an endpoint that accepts
 * connections and never answers, while garbage collections run, and prints how long the load took
 * and why it failed.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createKeyStore } from '../../../src/authn/entra/keystore.js';
import { entraConfig, TENANT_A } from './fixtures.js';

const FETCH_TIMEOUT_MS = 1000;
const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error('run with --expose-gc');

const server = createServer(() => {});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;
const gcTimer = setInterval(collect, 200);

const keys = createKeyStore({
  config: entraConfig({ authority: `http://127.0.0.1:${port}`, tenants: [TENANT_A], tokenVersions: ['2.0'], keys: { fetchTimeoutMs: FETCH_TIMEOUT_MS } }),
  // Node's own fetch, whose header timeout is undici's 300 s default: only the store's timer can end the wait.
  fetch: globalThis.fetch,
  now: Date.now,
  schedule: () => () => {},
});
const startedAt = Date.now();
await keys.start();
const elapsedMs = Date.now() - startedAt;
keys.stop();
clearInterval(gcTimer);
server.closeAllConnections();
server.close();
process.stdout.write(`${JSON.stringify({ elapsedMs, lastError: keys.stats()[0]?.lastError })}\n`);
