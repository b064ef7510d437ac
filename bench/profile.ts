/**
 * `npm run bench:profile`: where a cache-hit Check's time goes, for entra-authz and for the empty
 * grpc-js handler, from V8 CPU profiles of both servers taken under the same h2load load in the
 * same run. Writes the "Profile" section of docs/benchmark.md: microseconds of CPU per check by
 * owner (each of the project's modules, each package, the Node.js runtime, the garbage collector).
 *
 *   npm run bench:profile
 *   BENCH_PROFILE_CHECKS=200000 npm run bench:profile
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envoyCheckRequest } from '../src/cli/check.js';
import { DEMO } from '../src/dev/emulator.js';
import { GC, RUNTIME, summarizeProfile, type CpuProfile, type ProfileSummary } from './cpu-profile.js';
import { positiveIntEnv } from './env.js';
import { grpcCheck, saturatedRate, type LoadShape } from './h2load.js';
import { machine, table, writeSection } from './report.js';
import { assertOutcome, grpcFrame, productConfig } from './scenarios.js';
import { startEmptyServer, startProductServer, type ServerProcess } from './servers.js';
import { openBenchSession } from './session.js';

const CHECKS = positiveIntEnv('BENCH_PROFILE_CHECKS', 100_000);
/** h2load's 1 s warm-up also sends checks; they are counted from its rate. */
const WARM_UP_SECONDS = 1;
const SHAPE: LoadShape = { connections: 1, streams: 64 };
/** Sampling interval of the profiles, µs (V8's default is 1000). */
const SAMPLING_MICROS = 200;
const REPORT = fileURLToPath(new URL('../docs/benchmark.md', import.meta.url));

/** The project's own compiled modules, by source path: `telemetry/audit` for src/telemetry/audit.ts. */
function ownModule(url: string): string | undefined {
  const at = url.indexOf('/entra-authz-bench/');
  if (at === -1) return undefined;
  const path = url.slice(at + '/entra-authz-bench/'.length).replace(/\.js$/, '');
  if (path.startsWith('src/')) return path.slice('src/'.length);
  return path.startsWith('bench/') ? 'the empty handler' : undefined;
}

/** What each owner is, for a reader who does not know the code. */
const ROLE: Readonly<Record<string, string>> = {
  '@grpc/grpc-js': 'gRPC server: HTTP/2 sessions and streams, metadata, framing (with node:http2 under it)',
  '@grpc/proto-loader': 'CheckRequest decoding: conversion to plain objects',
  protobufjs: 'CheckRequest decoding',
  long: 'CheckRequest decoding: 64-bit fields',
  [GC]: 'V8 garbage collector',
  [RUNTIME]: 'Node.js event loop, microtasks, streams and timers outside any package',
  'prom-client': 'metrics (counters and the duration histogram)',
  pino: 'audit log writer',
  'sonic-boom': 'audit log writer (buffered writes)',
  'telemetry/audit': 'audit record: building and serialising it to one JSON line',
  'telemetry/telemetry': 'telemetry: ends the span, counts, writes the audit record',
  'telemetry/metrics': 'metrics: label lookup',
  'core/response': 'response plan: identity headers, metadata, header removal',
  'server/check-response': 'answer encoding: the cached CheckResponse with the decision id written in',
  'server/grpc': 'Check handler (gRPC adapter)',
  'server/protos': 'request decoder wrapper',
  'core/request': 'request view: headers, path normalisation',
  'core/token-hash': 'SHA-256 of the token (the verified-token cache key)',
  'authn/bearer': 'reading the bearer token from the Authorization header',
  'cache/token-cache': 'verified-token cache lookup',
  'engine/decide': 'decision flow',
  'policy/evaluate': 'rule selection and requirements',
  'runtime/compose': 'check orchestration (decide, plan, record)',
  'core/redact': 'redacting JWT-shaped text in audited strings',
  'policy/patterns': 'rule patterns (paths, hosts, SPIFFE ids)',
  'authn/mtls/peer': 'reading the TLS peer from the request',
  'lru-cache': 'verified-token cache storage',
  undici: 'HTTP client for Entra signing-key refreshes',
  'the empty handler': 'the empty handler itself',
};

async function profileOf(dir: string): Promise<CpuProfile> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length !== 1) throw new Error(`expected one CPU profile in ${dir}, found ${files.length}`);
  return JSON.parse(await readFile(join(dir, files[0]!), 'utf8')) as CpuProfile;
}

interface Measured {
  readonly summary: ProfileSummary;
  /** Checks the server answered while profiled. */
  readonly checks: number;
  readonly rate: number;
}

/** Starts a server under the profiler, sends the checks, stops it, and reads its profile. */
async function measure(
  start: (nodeArgs: readonly string[]) => Promise<ServerProcess>,
  handler: string,
  bodyFile: string,
  profileDir: string,
  check?: (s: ServerProcess) => Promise<void>,
): Promise<Measured> {
  const server = await start(['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-interval=${SAMPLING_MICROS}`]);
  let rate: number;
  try {
    await check?.(server);
    rate = await saturatedRate(grpcCheck(server.address, bodyFile), SHAPE, CHECKS);
  } finally {
    await server.stop();
  }
  // The warm-up sends at about the measured rate; `check` sent one.
  const checks = CHECKS + Math.round(rate * WARM_UP_SECONDS) + (check ? 1 : 0);
  return { summary: summarizeProfile(await profileOf(profileDir), ownModule, handler), checks, rate };
}

const perCheck = (micros: number, checks: number): string => (micros / checks).toFixed(1);

async function main(): Promise<void> {
  const { h2load, loadAtStart, dir, emulator, close } = await openBenchSession('profile');
  try {
    const token = await emulator.issueToken({ appId: DEMO.clients.reader.clientId, expiresInSeconds: 86_400 });
    const request = envoyCheckRequest({ token, path: '/orders/42' });
    const bodyFile = join(dir, 'allow.bin');
    await writeFile(bodyFile, grpcFrame(request));

    process.stderr.write('profiling the empty handler…\n');
    const empty = await measure((nodeArgs) => startEmptyServer('grpc', { nodeArgs }), 'the empty handler', bodyFile, join(dir, 'empty'));
    process.stderr.write('profiling entra-authz…\n');
    const config = productConfig({ authority: emulator.url, workers: 1 });
    const product = await measure(
      (nodeArgs) => startProductServer('profiled', config, dir, { nodeArgs }),
      'server/grpc',
      bodyFile,
      join(dir, 'product'),
      (s) => assertOutcome(s.address, request, { kind: 'allow' }, 'profiled server'),
    );

    const emptyByOwner = new Map(empty.summary.owners.map((o) => [o.owner, o.micros]));
    const shown = product.summary.owners.filter((o) => o.micros / product.checks >= 0.2);
    const rest = product.summary.owners.filter((o) => !shown.includes(o));
    const rows = [
      ...shown.map((o) => [`\`${o.owner}\``, ROLE[o.owner] ?? '', perCheck(o.micros, product.checks), emptyByOwner.has(o.owner) ? perCheck(emptyByOwner.get(o.owner)!, empty.checks) : '–']),
      ['everything else', `${rest.length} owners under 0.2 µs each`, perCheck(rest.reduce((s, o) => s + o.micros, 0), product.checks), '–'],
      ['**total CPU per check**', '', `**${perCheck(product.summary.busyMicros, product.checks)}**`, `**${perCheck(empty.summary.busyMicros, empty.checks)}**`],
    ];
    const body = [
      `Measured by \`npm run bench:profile\` ([bench/profile.ts](../bench/profile.ts), ${new Date().toISOString().slice(0, 10)}) on ` +
        `${machine()}, ${h2load}; ` +
        `the 1-minute load average was ${loadAtStart.toFixed(1)} when the run started.`,
      '',
      `Each server ran under V8's sampling profiler (\`node --cpu-prof\`, one sample every ${SAMPLING_MICROS} µs) while h2load sent ` +
        `${CHECKS.toLocaleString('en-US')} cache-hit allow checks (${SHAPE.connections} connection × ${SHAPE.streams} streams, after a ` +
        `${WARM_UP_SECONDS} s warm-up): entra-authz with the shipped defaults (audit records to stdout, /dev/null), and the empty ` +
        `grpc-js Check handler. A sample counts for the nearest frame, from the sampled one outwards, that belongs to one of the ` +
        `project's modules or to a package: JSON.stringify in the audit module counts for \`telemetry/audit\`, an http2 write under ` +
        `grpc-js for \`@grpc/grpc-js\`. Idle time and everything before the first check (start-up, loading signing keys) are left out. Profiling slows both servers alike ` +
        `(${product.rate.toFixed(0)} and ${empty.rate.toFixed(0)} checks/s while profiled).`,
      '',
      table(['owner', 'what it does', 'µs CPU per check, entra-authz', 'µs CPU per check, empty handler'], rows),
    ].join('\n');
    await writeSection(REPORT, 'Profile', body);
    console.log(body);
  } finally {
    await close();
  }
}

await main();
