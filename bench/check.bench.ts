/**
 * Throughput of Check against a baseline measured in the same run: an empty grpc-js handler for
 * the same Envoy-shaped request. Machines here are shared and noisy, so the ratio is the result;
 * absolute numbers are printed for context only.
 *
 * Load comes from nghttp2's `h2load` (Debian package `nghttp2-client`) in its own process, over one
 * HTTP/2 connection as Envoy's ext_authz cluster uses: a grpc-js client in this process would be
 * the bottleneck and hide the server's cost.
 *
 *   npm run bench                 # defaults: 20000 checks per scenario, 64 streams in flight
 *   BENCH_CHECKS=50000 BENCH_CONCURRENCY=128 npm run bench
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { envoyCheckRequest } from '../src/cli/check.js';
import { validateConfig } from '../src/config/load.js';
import { DEMO, startEntraEmulator } from '../src/dev/emulator.js';
import { startApp, type RunningApp } from '../src/runtime/app.js';
import { silentLogger } from '../src/telemetry/logger.js';
import { loadAuthorizationService } from '../src/server/protos.js';

const CHECKS = Number(process.env['BENCH_CHECKS'] ?? 20_000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 64);
const ROUNDS = 3;

async function emptyServer(): Promise<{ address: string; close(): void }> {
  const server = new Server();
  server.addService(loadAuthorizationService(), {
    Check: (_call: unknown, cb: (err: null, res: unknown) => void) => cb(null, { status: { code: 0 }, ok_response: {} }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

const run = promisify(execFile);

/** A request body as gRPC frames it: compression flag, 4-byte length, the protobuf message. */
function grpcFrame(request: unknown): Buffer {
  const message = loadAuthorizationService()['Check']!.requestSerialize(request);
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** Checks per second reported by h2load for `CHECKS` requests with `CONCURRENCY` streams in flight. */
async function throughput(address: string, bodyFile: string): Promise<number> {
  const { stdout } = await run('h2load', [
    '-n', String(CHECKS), '-c', '1', '-m', String(CONCURRENCY), '--warm-up-time', '1',
    '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers',
    `http://${address}/envoy.service.auth.v3.Authorization/Check`,
  ]);
  const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout);
  const failed = /requests: .* (\d+) failed/.exec(stdout);
  if (!rate || (failed && failed[1] !== '0')) throw new Error(`h2load: unexpected output\n${stdout}`);
  return Number(rate[1]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const emulator = await startEntraEmulator();
  const config = (cacheEntries: number) =>
    validateConfig({
      server: { listen: '127.0.0.1:0' },
      entra: { authority: emulator.url, tenants: [DEMO.tenantId], audiences: [DEMO.api.appId], tokenCache: { maxEntries: cacheEntries } },
      rules: [{ name: 'orders', require: { roles: { anyOf: ['Orders.Read'] } } }],
      telemetry: { admin: { listen: '127.0.0.1:0' }, audit: { sink: 'off' } },
    });
  const start = async (cacheEntries: number): Promise<RunningApp> => {
    const app = await startApp(config(cacheEntries), { log: silentLogger() });
    while (!app.isServing()) await new Promise((r) => setTimeout(r, 10));
    return app;
  };
  const baseline = await emptyServer();
  const cached = await start(10_000);
  const uncached = await start(0);

  const token = await emulator.issueToken({ appId: DEMO.clients.reader.clientId, expiresInSeconds: 86_400 });
  const dir = await mkdtemp(join(tmpdir(), 'entra-authz-bench-'));
  const allow = join(dir, 'allow.bin');
  const noToken = join(dir, 'no-token.bin');
  await writeFile(allow, grpcFrame(envoyCheckRequest({ token, path: '/orders/42' })));
  await writeFile(noToken, grpcFrame(envoyCheckRequest({ path: '/orders/42' })));

  const scenarios: [string, string, string][] = [
    ['empty grpc-js handler (baseline)', baseline.address, allow],
    ['allow, verified-token cache hit', cached.address, allow],
    ['allow, RS256 verification every check', uncached.address, allow],
    ['deny, no token (401)', cached.address, noToken],
  ];
  const results = new Map<string, number[]>();
  // Interleave rounds so a noisy neighbour hurts every scenario alike.
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, address, body] of scenarios) {
      const list = results.get(name) ?? [];
      list.push(await throughput(address, body));
      results.set(name, list);
    }
  }
  const base = median(results.get(scenarios[0]![0]) ?? []);
  console.log(`Check throughput, h2load, ${CHECKS} checks × ${ROUNDS} rounds, ${CONCURRENCY} streams on one connection (median of rounds)\n`);
  console.log('scenario'.padEnd(42), 'checks/s'.padStart(10), 'vs baseline'.padStart(12));
  for (const [name] of scenarios) {
    const m = median(results.get(name) ?? []);
    console.log(name.padEnd(42), m.toFixed(0).padStart(10), `${((m / base) * 100).toFixed(0)} %`.padStart(12));
  }

  baseline.close();
  await Promise.all([cached.close(100), uncached.close(100)]);
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
}

await main();
