/**
 * `npm run bench`: Check throughput and latency of entra-authz against an empty grpc-js Check
 * handler measured in the same run. Machines are shared and noisy, so the ratio to the baseline is
 * the result; rounds are interleaved so a noisy neighbour hurts every scenario alike, and each
 * figure is the median of the rounds. Writes the "gRPC" section of docs/benchmark.md.
 *
 *   npm run bench
 *   BENCH_CHECKS=50000 BENCH_ROUNDS=5 BENCH_PACED_SECONDS=15 BENCH_WORKERS=4 npm run bench
 */
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envoyCheckRequest } from '../src/cli/check.js';
import { DEMO } from '../src/dev/emulator.js';
import { createTestPki } from '../test/fixtures/certs.js';
import { grpcCheck, median, pacedLatencies, percentile, saturatedRate, type LoadShape } from './h2load.js';
import { machine, mb, table, writeSection } from './report.js';
import { positiveIntEnv } from './env.js';
import { assertOutcome, grpcFrame, productConfig, requests, type ServerOptions } from './scenarios.js';
import { residentMemory, startEmptyServer, startProductServer, type ServerProcess } from './servers.js';
import { openBenchSession } from './session.js';

const CHECKS = positiveIntEnv('BENCH_CHECKS', 20_000);
const ROUNDS = positiveIntEnv('BENCH_ROUNDS', 3);
const PACED_SECONDS = positiveIntEnv('BENCH_PACED_SECONDS', 8);
const WORKERS = positiveIntEnv('BENCH_WORKERS', availableParallelism());
const PACED_RATES = [2_000, 5_000];
const ONE_CONNECTION: LoadShape = { connections: 1, streams: 64 };
const FOUR_CONNECTIONS: LoadShape = { connections: 4, streams: 16 };
const REPORT = fileURLToPath(new URL('../docs/benchmark.md', import.meta.url));

interface Row {
  readonly label: string;
  readonly server: string;
  readonly request: string;
  readonly shape: LoadShape;
}

async function main(): Promise<void> {
  const { h2load, loadAtStart, dir, emulator, close } = await openBenchSession('bench');
  const pki = await createTestPki();
  const caBundleFile = join(dir, 'client-ca.pem');
  await writeFile(caBundleFile, pki.ca.certPem);

  const base: ServerOptions = { authority: emulator.url, workers: 1 };
  const specs: Record<string, ServerOptions> = {
    default: base,
    auditOff: { ...base, audit: false },
    noCache: { ...base, tokenCache: false },
    peer: { ...base, peer: { caBundleFile } },
    workers: { ...base, workers: WORKERS },
  };
  const servers = new Map<string, ServerProcess>();
  const stopAll = () => Promise.all([...servers.values()].map((s) => s.stop()));
  try {
    servers.set('empty', await startEmptyServer());
    for (const [key, options] of Object.entries(specs)) servers.set(key, await startProductServer(key, productConfig(options), dir));

    const token = await emulator.issueToken({ appId: DEMO.clients.reader.clientId, expiresInSeconds: 86_400 });
    const bodies = new Map<string, string>();
    const checked = async (server: string, request: string): Promise<void> => {
      const spec = requests(token, pki).find((r) => r.key === request)!;
      const message = envoyCheckRequest(spec.options);
      if (server !== 'empty') await assertOutcome(servers.get(server)!.address, message, spec.expected, `${server}/${request}`);
      if (!bodies.has(request)) {
        const file = join(dir, `${request}.bin`);
        await writeFile(file, grpcFrame(message));
        bodies.set(request, file);
      }
    };

    const rows: Row[] = [
      { label: 'empty grpc-js Check handler (baseline)', server: 'empty', request: 'allow', shape: ONE_CONNECTION },
      { label: 'allow, verified-token cache hit, audit to stdout (default)', server: 'default', request: 'allow', shape: ONE_CONNECTION },
      { label: 'allow, verified-token cache hit, audit off', server: 'auditOff', request: 'allow', shape: ONE_CONNECTION },
      { label: 'allow, RS256 verification every check', server: 'noCache', request: 'allow', shape: ONE_CONNECTION },
      { label: 'deny 401, no token', server: 'default', request: 'no-token', shape: ONE_CONNECTION },
      { label: 'deny 403, missing role', server: 'default', request: 'missing-role', shape: ONE_CONNECTION },
      { label: 'allow, mTLS peer certificate verified every check', server: 'peer', request: 'peer-certificate', shape: ONE_CONNECTION },
      { label: 'allow, trusted XFCC parsed every check', server: 'peer', request: 'xfcc', shape: ONE_CONNECTION },
      { label: 'empty handler, 4 connections × 16 streams', server: 'empty', request: 'allow', shape: FOUR_CONNECTIONS },
      { label: 'allow, cache hit, 4 connections × 16 streams', server: 'default', request: 'allow', shape: FOUR_CONNECTIONS },
      { label: `allow, cache hit, workers=${WORKERS}, 4 connections × 16 streams`, server: 'workers', request: 'allow', shape: FOUR_CONNECTIONS },
    ];
    for (const row of rows) await checked(row.server, row.request);

    const rates = new Map<Row, number[]>(rows.map((r) => [r, []]));
    const paced = new Map<string, number[]>();
    const pacedServers = ['empty', 'default'];
    for (let round = 1; round <= ROUNDS; round++) {
      process.stderr.write(`round ${round}/${ROUNDS}\n`);
      for (const row of rows) {
        rates.get(row)!.push(await saturatedRate(grpcCheck(servers.get(row.server)!.address, bodies.get(row.request)!), row.shape, CHECKS));
      }
      for (const rps of PACED_RATES) {
        for (const server of pacedServers) {
          const samples = await pacedLatencies(grpcCheck(servers.get(server)!.address, bodies.get('allow')!), rps, PACED_SECONDS, join(dir, 'paced.log'));
          const key = `${server}@${rps}`;
          paced.set(key, [...(paced.get(key) ?? []), ...samples]);
        }
      }
    }

    const memory = new Map<string, { rss: number; peak: number }>();
    for (const [key, server] of servers) memory.set(key, await residentMemory(server.pid));

    const baseline = median(rates.get(rows[0]!)!);
    const baseline4 = median(rates.get(rows.find((r) => r.server === 'empty' && r.shape === FOUR_CONNECTIONS)!)!);
    const throughputRows = rows.map((r) => {
      const m = median(rates.get(r)!);
      const against = r.shape === FOUR_CONNECTIONS ? baseline4 : baseline;
      return [r.label, `${r.shape.connections} × ${r.shape.streams}`, m.toFixed(0), `${((m / against) * 100).toFixed(0)} %`];
    });
    const us = (v: number): string => `${(v / 1000).toFixed(2)} ms`;
    const latencyRows = PACED_RATES.flatMap((rps) =>
      pacedServers.map((server) => {
        const sorted = [...paced.get(`${server}@${rps}`)!].sort((a, b) => a - b);
        const label = server === 'empty' ? 'empty grpc-js Check handler' : 'allow, cache hit, audit to stdout';
        return [`${label}, ${rps} req/s`, String(sorted.length), ...[0.5, 0.9, 0.99, 0.999].map((p) => us(percentile(sorted, p)))];
      }),
    );
    const names: Record<string, string> = {
      empty: 'empty grpc-js Check handler',
      default: 'default (cache on, audit to stdout)',
      auditOff: 'audit off',
      noCache: 'verified-token cache off',
      peer: 'peer certificate + XFCC',
      workers: `workers=${WORKERS} (all processes)`,
    };
    const memoryRows = [...memory].map(([key, m]) => [names[key] ?? key, mb(m.rss), mb(m.peak)]);

    const body = [
      `Measured by \`npm run bench\` (${new Date().toISOString().slice(0, 10)}) on ${machine()}, ${h2load}. ` +
        `The load generator, h2load, runs on the same cores; ` +
        `the 1-minute load average was ${loadAtStart.toFixed(1)} when the run started (other work on the machine lowers every figure alike).`,
      '',
      `Every server runs in its own process (\`node dist/cli.js serve\`, one worker unless the row says so); ` +
        `audit records go to stdout, redirected to /dev/null. Each request is sent once and its answer checked before it is measured.`,
      '',
      `### Throughput (median of ${ROUNDS} interleaved rounds of ${CHECKS} checks, after a 1 s warm-up)`,
      '',
      table(['scenario', 'connections × streams', 'checks/s', 'vs empty handler'], throughputRows),
      '',
      'Rows with 4 connections compare with the empty handler at 4 connections.',
      '',
      `### Latency at a fixed rate (one connection, ${PACED_SECONDS} s per round after 1 s of warm-up, all rounds pooled)`,
      '',
      table(['scenario', 'samples', 'p50', 'p90', 'p99', 'p99.9'], latencyRows),
      '',
      '### Memory (resident set after the run)',
      '',
      table(['server', 'RSS', 'peak RSS'], memoryRows),
    ].join('\n');
    await writeSection(REPORT, 'gRPC', body);
    console.log(body);
  } finally {
    await stopAll();
    await close();
  }
}

await main();
