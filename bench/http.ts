/**
 * `npm run bench:http`: the HTTP authorization listener (`server.http`) next to gRPC mode, in one
 * run. Each mode is measured against its own empty handler — a node:http server answering 200 for
 * HTTP/1.1, the empty grpc-js Check handler for gRPC — so the two stand side by side as ratios of
 * their own transport's ceiling and in absolute req/s. One product server serves both listeners,
 * rounds are interleaved and each figure is the median of the rounds, as in `npm run bench`.
 * Writes the "HTTP mode" section of docs/benchmark.md.
 *
 *   npm run bench:http
 *   BENCH_CHECKS=50000 BENCH_ROUNDS=5 BENCH_HTTP_CONNECTIONS=32 npm run bench:http
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envoyCheckRequest } from '../src/cli/check.js';
import { DEMO } from '../src/dev/emulator.js';
import { grpcCheck, http1Request, median, saturatedRate, type LoadShape, type LoadTarget } from './h2load.js';
import { machine, table, writeSection } from './report.js';
import { positiveIntEnv } from './env.js';
import { assertHttpOutcome, assertOutcome, grpcFrame, productConfig, WRITE_PATH, type Expected } from './scenarios.js';
import { startEmptyServer, startProductServer, type ServerProcess } from './servers.js';
import { openBenchSession } from './session.js';

const CHECKS = positiveIntEnv('BENCH_CHECKS', 20_000);
const ROUNDS = positiveIntEnv('BENCH_ROUNDS', 3);
/** gRPC multiplexes every check on one connection; HTTP/1.1 needs a connection per check in flight. */
const GRPC_SHAPE: LoadShape = { connections: 1, streams: 64 };
const HTTP_SHAPE: LoadShape = { connections: positiveIntEnv('BENCH_HTTP_CONNECTIONS', 64), streams: 1 };
const REPORT = fileURLToPath(new URL('../docs/benchmark.md', import.meta.url));
const HOST = 'api.example.com';
const PATH = '/orders/42';

/** What the caller sends; the same three in both modes. */
interface Scenario {
  readonly label: string;
  readonly path: string;
  readonly withToken: boolean;
  readonly expected: Expected;
}

const SCENARIOS: readonly Scenario[] = [
  { label: 'allow, verified-token cache hit, audit to stdout', path: PATH, withToken: true, expected: { kind: 'allow' } },
  { label: 'deny 401, no token', path: PATH, withToken: false, expected: { kind: 'deny', httpStatus: 'Unauthorized' } },
  { label: 'deny 403, missing role', path: `${WRITE_PATH}/1`, withToken: true, expected: { kind: 'deny', httpStatus: 'Forbidden' } },
];

/** The two HTTP request shapes: where the original request is read from. */
const HTTP_SHAPES = {
  'forward-auth': (s: Scenario) => ({
    path: '/forward-auth',
    host: 'entra-authz',
    headers: { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'https', 'x-forwarded-host': HOST, 'x-forwarded-uri': s.path },
  }),
  envoy: (s: Scenario) => ({ path: `/envoy${s.path}`, host: HOST, headers: { 'x-forwarded-proto': 'https' } }),
} as const;

interface Row {
  readonly mode: 'HTTP/1.1' | 'gRPC';
  readonly label: string;
  readonly server: 'product' | 'emptyHttp' | 'emptyGrpc';
  readonly target: LoadTarget;
  readonly shape: LoadShape;
}

async function main(): Promise<void> {
  const { h2load, loadAtStart, dir, emulator, close } = await openBenchSession('bench-http');
  const servers: ServerProcess[] = [];
  try {
    const product = await startProductServer('http', productConfig({ authority: emulator.url, workers: 1, http: true }), dir);
    servers.push(product);
    const emptyHttp = await startEmptyServer('http');
    servers.push(emptyHttp);
    const emptyGrpc = await startEmptyServer('grpc');
    servers.push(emptyGrpc);
    const httpAddress = product.httpAddress!;

    const token = await emulator.issueToken({ appId: DEMO.clients.reader.clientId, expiresInSeconds: 86_400 });
    const auth = (s: Scenario): Record<string, string> => (s.withToken ? { authorization: `Bearer ${token}` } : {});
    const rows: Row[] = [
      { mode: 'HTTP/1.1', label: 'empty node:http handler answering 200 (baseline)', server: 'emptyHttp', target: http1Request(emptyHttp.address, '/forward-auth', HOST, {}, '2xx'), shape: HTTP_SHAPE },
    ];
    for (const [shapeName, build] of Object.entries(HTTP_SHAPES)) {
      for (const s of SCENARIOS) {
        const r = build(s);
        const headers = { ...r.headers, ...auth(s) };
        // The check below goes through node:http, which takes the Host as a header.
        await assertHttpOutcome(httpAddress, r.path, { host: r.host, ...headers }, s.expected, `${shapeName}: ${s.label}`);
        const status = s.expected.kind === 'allow' ? '2xx' : '4xx';
        rows.push({ mode: 'HTTP/1.1', label: `${s.label} — \`${r.path}\``, server: 'product', target: http1Request(httpAddress, r.path, r.host, headers, status), shape: HTTP_SHAPE });
      }
    }
    const grpcBody = async (key: string, s: Scenario | undefined): Promise<string> => {
      const message = envoyCheckRequest({ path: s?.path ?? PATH, host: HOST, ...(s?.withToken === false ? {} : { token }) });
      if (s) await assertOutcome(product.address, message, s.expected, `gRPC: ${s.label}`);
      const file = join(dir, `${key}.bin`);
      await writeFile(file, grpcFrame(message));
      return file;
    };
    rows.push({ mode: 'gRPC', label: 'empty grpc-js Check handler (baseline)', server: 'emptyGrpc', target: grpcCheck(emptyGrpc.address, await grpcBody('baseline', undefined)), shape: GRPC_SHAPE });
    for (const [i, s] of SCENARIOS.entries()) {
      rows.push({ mode: 'gRPC', label: s.label, server: 'product', target: grpcCheck(product.address, await grpcBody(`grpc-${i}`, s)), shape: GRPC_SHAPE });
    }

    const rates = new Map<Row, number[]>(rows.map((r) => [r, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      process.stderr.write(`round ${round}/${ROUNDS}\n`);
      for (const row of rows) rates.get(row)!.push(await saturatedRate(row.target, row.shape, CHECKS));
    }

    const baselines = new Map(rows.filter((r) => r.server !== 'product').map((r) => [r.mode, median(rates.get(r)!)]));
    const throughputRows = rows.map((r) => {
      const m = median(rates.get(r)!);
      return [r.label, r.mode, `${r.shape.connections} × ${r.shape.streams}`, m.toFixed(0), `${((m / baselines.get(r.mode)!) * 100).toFixed(0)} %`];
    });
    const body = [
      `Measured by \`npm run bench:http\` ([bench/http.ts](../bench/http.ts), ${new Date().toISOString().slice(0, 10)}) on ${machine()}, ` +
        `${h2load}. The load generator, h2load, runs on ` +
        `the same cores; the 1-minute load average was ${loadAtStart.toFixed(1)} when the run started.`,
      '',
      'One entra-authz process (`node dist/cli.js serve`, one worker, audit records to stdout redirected to /dev/null) serves both ' +
        `listeners; each mode is measured against an empty handler of its own transport, in the same run. HTTP/1.1 requests come ` +
        `from h2load \`--h1\` on ${HTTP_SHAPE.connections} keep-alive connections with one request in flight each, as forward-auth proxies ` +
        `send them (no pipelining): \`/forward-auth\` with \`X-Forwarded-*\` headers (Caddy, Traefik), \`/envoy/…\` as Envoy's ` +
        `\`http_service\` asks; the 403 rule matches on the path (proxies send no context extensions). gRPC Checks come from h2load on one ` +
        `HTTP/2 connection with ${GRPC_SHAPE.streams} streams, the same number in flight. Each request is sent once and its answer ` +
        `checked before it is measured, and h2load's status codes are checked on every round (all 2xx for an allow, all 4xx for a deny).`,
      '',
      `### Throughput (median of ${ROUNDS} interleaved rounds of ${CHECKS} requests, after a 1 s warm-up)`,
      '',
      table(['scenario', 'mode', 'connections × streams', 'req/s', 'vs empty handler of its mode'], throughputRows),
    ].join('\n');
    await writeSection(REPORT, 'HTTP mode', body);
    console.log(body);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await close();
  }
}

await main();
