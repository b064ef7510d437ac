/**
 * `npm run bench:memory`: whether entra-authz's memory stays bounded, measured on the real server
 * (one worker process, audit on). Memory does not depend on CPU speed, so these figures hold on a
 * busy machine too. Writes the "Memory" section of docs/benchmark.md.
 *
 * 1. Steady over many decisions: cache-hit allows from h2load, the resident set (VmRSS) read after
 *    every BENCH_MEMORY_CHECKS / BENCH_MEMORY_SAMPLES of them; once with audit records to stdout
 *    (/dev/null) and once to a file, whose writes are what the bounded audit buffer waits on.
 * 2. Many cached tokens: BENCH_MEMORY_TOKENS distinct valid tokens, each sent once, with the
 *    verified-token cache raised to hold them all; once with Node's default heap sizing and once
 *    with the V8 heap limit the Kubernetes manifest sets (NODE_OPTIONS=--max-old-space-size=192).
 *
 *   npm run bench:memory
 *   BENCH_MEMORY_CHECKS=100000 BENCH_MEMORY_TOKENS=10000 npm run bench:memory
 */
import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envoyCheckRequest } from '../src/cli/check.js';
import { DEMO, type EntraEmulator } from '../src/dev/emulator.js';
import { withDeadline } from './deadline.js';
import { sendDistinctAllows } from './distinct-checks.js';
import { positiveIntEnv } from './env.js';
import { grpcCheck, sendChecks, type LoadShape } from './h2load.js';
import { machine, mb, table, writeSection } from './report.js';
import { assertOutcome, grpcFrame, grpcFramer, productConfig, type ServerOptions } from './scenarios.js';
import { metricValue, residentMemory, startProductServer, type ServerProcess } from './servers.js';
import { openBenchSession } from './session.js';

const CHECKS = positiveIntEnv('BENCH_MEMORY_CHECKS', 1_000_000);
const SAMPLES = positiveIntEnv('BENCH_MEMORY_SAMPLES', 100);
const TOKENS = positiveIntEnv('BENCH_MEMORY_TOKENS', 100_000);
/** Checks in flight while the distinct tokens are sent (as many as h2load's one connection × 64). */
const TOKENS_IN_FLIGHT = 64;
/** As Envoy connects: one connection per worker thread. */
const LOAD: LoadShape = { connections: 4, streams: 16 };
/** The first part of the decisions, while caches fill and the heap finds its size, is left out of the slope. */
const WARM_UP = 0.2;
/** Fitted growth after warm-up below which RSS counts as steady (a leak of 10 bytes per decision would pass 8 MB over 800k). */
const STEADY_BYTES = 10 * 2 ** 20;
const TARGET_BYTES = 250 * 2 ** 20;
const TOKEN_CACHE_TTL_SECONDS = 3600;
/** The V8 heap limit deploy/kubernetes/deployment.yaml sets (NODE_OPTIONS), under its 256 MiB memory limit. */
const MANIFEST_HEAP_FLAG = '--max-old-space-size=192';
/**
 * Each phase must finish within a minute plus the time it would take at these rates (far below
 * what any machine manages), else the run fails instead of waiting for ever.
 */
const SLOWEST_CACHE_HITS_PER_SECOND = 1_000;
const SLOWEST_NEW_TOKENS_PER_SECOND = 200;
const deadlineMs = (n: number, perSecond: number): number => (60 + n / perSecond) * 1000;
const REPORT = fileURLToPath(new URL('../docs/benchmark.md', import.meta.url));
const ORDERS_PATH = '/orders/42';

const metric = {
  decisions: 'entra_authz_decisions_total',
  cacheLookups: 'entra_authz_token_cache_lookups_total',
  auditDropped: 'entra_authz_audit_records_dropped_total',
} as const;

interface Sample {
  /** Checks this benchmark had sent when the sample was taken. */
  readonly sent: number;
  /** The server's own count of decisions (from /metrics). */
  readonly decisions: number;
  readonly rss: number;
}

interface Series {
  readonly samples: readonly Sample[];
  readonly peak: number;
  readonly auditDropped: number;
  readonly cacheMisses: number;
}

function reader(emulator: EntraEmulator): Promise<string> {
  return emulator.issueToken({ appId: DEMO.clients.reader.clientId, expiresInSeconds: 86_400 });
}

async function sample(server: ServerProcess, sent: number): Promise<Sample> {
  const [{ rss }, decisions] = await Promise.all([residentMemory(server.pid), metricValue(server.admin!, metric.decisions)]);
  return { sent, decisions, rss };
}

/** One server of the run: its configuration, node flags and how long its phase may take. */
interface Phase {
  readonly name: string;
  readonly options: ServerOptions;
  readonly nodeFlags?: readonly string[];
  readonly ms: number;
}

/**
 * Starts the phase's server, checks that `token` is allowed, runs `measure` within the phase's
 * deadline, and always stops the server.
 */
async function withServer<T>(
  { name, options, nodeFlags, ms }: Phase,
  dir: string,
  token: string,
  measure: (server: ServerProcess, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const server = await startProductServer(name, productConfig(options), dir, { nodeArgs: nodeFlags ?? [] });
  try {
    await assertOutcome(server.address, envoyCheckRequest({ token, path: ORDERS_PATH }), { kind: 'allow' }, name);
    return await withDeadline(`the ${name} phase`, ms, (signal) => measure(server, signal));
  } finally {
    await server.stop();
  }
}

/** CHECKS cache-hit allows of one token in SAMPLES steps, RSS read after each. */
async function cacheHitSeries(server: ServerProcess, bodyFile: string, signal: AbortSignal): Promise<Series> {
  const samples = [await sample(server, 0)];
  const step = Math.ceil(CHECKS / SAMPLES);
  for (let sent = 0; sent < CHECKS; ) {
    const n = Math.min(step, CHECKS - sent);
    await sendChecks(grpcCheck(server.address, bodyFile), LOAD, n, signal);
    sent += n;
    samples.push(await sample(server, sent));
    process.stderr.write(`  ${sent} checks, RSS ${mb(samples.at(-1)!.rss)}\n`);
  }
  const admin = server.admin!;
  return {
    samples,
    peak: (await residentMemory(server.pid)).peak,
    auditDropped: await metricValue(admin, metric.auditDropped),
    cacheMisses: await metricValue(admin, metric.cacheLookups, { result: 'miss' }),
  };
}

/** TOKENS distinct tokens, each sent once, in ten steps with RSS read after each. */
async function distinctTokenSeries(server: ServerProcess, emulator: EntraEmulator, signal: AbortSignal): Promise<Series & { readonly oldestStillCached: boolean }> {
  const admin = server.admin!;
  const missesBefore = await metricValue(admin, metric.cacheLookups, { result: 'miss' });
  const first = await reader(emulator);
  const frameBody = grpcFramer();
  const frame = async (i: number): Promise<Buffer> => frameBody(envoyCheckRequest({ token: i === 0 ? first : await reader(emulator), path: ORDERS_PATH }));
  const samples = [await sample(server, 0)];
  const step = Math.ceil(TOKENS / 10);
  for (let sent = 0; sent < TOKENS; ) {
    const n = Math.min(step, TOKENS - sent);
    const offset = sent;
    await sendDistinctAllows(server.address, n, (i) => frame(offset + i), TOKENS_IN_FLIGHT, signal);
    sent += n;
    samples.push(await sample(server, sent));
    process.stderr.write(`  ${sent} tokens, RSS ${mb(samples.at(-1)!.rss)}\n`);
  }
  const cacheMisses = (await metricValue(admin, metric.cacheLookups, { result: 'miss' })) - missesBefore;
  const peak = (await residentMemory(server.pid)).peak;
  // The least recently used token is the first to go: a hit on it means every token is still cached.
  const hitsBefore = await metricValue(admin, metric.cacheLookups, { result: 'hit' });
  await assertOutcome(server.address, envoyCheckRequest({ token: first, path: ORDERS_PATH }), { kind: 'allow' }, 'oldest token');
  const oldestStillCached = (await metricValue(admin, metric.cacheLookups, { result: 'hit' })) === hitsBefore + 1;
  return { samples, peak, auditDropped: await metricValue(admin, metric.auditDropped), cacheMisses, oldestStillCached };
}

/** Least-squares growth of RSS per decision over the samples after warm-up, and across them. */
function growthAfterWarmUp(samples: readonly Sample[]): { perDecision: number; across: number; from: Sample; to: Sample } {
  const after = samples.filter((s) => s.sent >= WARM_UP * CHECKS);
  const n = after.length;
  const mx = after.reduce((a, s) => a + s.sent, 0) / n;
  const my = after.reduce((a, s) => a + s.rss, 0) / n;
  const sxx = after.reduce((a, s) => a + (s.sent - mx) ** 2, 0);
  const perDecision = sxx === 0 ? 0 : after.reduce((a, s) => a + (s.sent - mx) * (s.rss - my), 0) / sxx;
  const from = after[0]!;
  const to = after.at(-1)!;
  return { perDecision, across: perDecision * (to.sent - from.sent), from, to };
}

/** The sample nearest each tenth of `total` (start, 10 %, …, end). */
function tenths(samples: readonly Sample[], total: number): Sample[] {
  return Array.from({ length: 11 }, (_, k) =>
    samples.reduce((best, s) => (Math.abs(s.sent - (k * total) / 10) < Math.abs(best.sent - (k * total) / 10) ? s : best)),
  );
}

const met = (ok: boolean): string => (ok ? '**met**' : '**not met**');
const count = (n: number): string => n.toLocaleString('en-US');

function steadyLine(what: string, series: Series): string {
  const g = growthAfterWarmUp(series.samples);
  return (
    `- RSS steady over ${count(CHECKS)} cache-hit decisions, ${what}: ${mb(g.from.rss)} after warm-up → ${mb(g.to.rss)} at the end, ` +
    `fitted slope ${g.perDecision.toFixed(2)} bytes per decision (${(g.across / 2 ** 20).toFixed(1)} MB over the last ` +
    `${count(g.to.sent - g.from.sent)}) — ${met(g.across < STEADY_BYTES)}.`
  );
}

async function main(): Promise<void> {
  const { h2load, loadAtStart, dir, emulator, close } = await openBenchSession('membench');
  try {
    const token = await reader(emulator);
    const bodyFile = join(dir, 'allow.bin');
    await writeFile(bodyFile, grpcFrame(envoyCheckRequest({ token, path: ORDERS_PATH })));
    const base: ServerOptions = { authority: emulator.url, workers: 1 };
    const auditFile = join(dir, 'audit.jsonl');

    process.stderr.write(`${count(CHECKS)} cache-hit checks, audit to stdout\n`);
    const hitsMs = deadlineMs(CHECKS, SLOWEST_CACHE_HITS_PER_SECOND);
    const toStdout = await withServer({ name: 'memory-stdout', options: base, ms: hitsMs }, dir, token, (s, signal) => cacheHitSeries(s, bodyFile, signal));
    process.stderr.write(`${count(CHECKS)} cache-hit checks, audit to a file\n`);
    const toFile = await withServer({ name: 'memory-file', options: { ...base, audit: { file: auditFile } }, ms: hitsMs }, dir, token, (s, signal) =>
      cacheHitSeries(s, bodyFile, signal),
    );
    const auditFileBytes = (await stat(auditFile)).size;
    await rm(auditFile);
    const tokenCache = { maxEntries: TOKENS, ttlSeconds: TOKEN_CACHE_TTL_SECONDS };
    const tokensMs = deadlineMs(TOKENS, SLOWEST_NEW_TOKENS_PER_SECOND);
    process.stderr.write(`${count(TOKENS)} distinct tokens, Node's default heap sizing\n`);
    const distinct = await withServer({ name: 'memory-tokens', options: { ...base, tokenCache }, ms: tokensMs }, dir, token, (s, signal) =>
      distinctTokenSeries(s, emulator, signal),
    );
    process.stderr.write(`${count(TOKENS)} distinct tokens, ${MANIFEST_HEAP_FLAG}\n`);
    const capped = await withServer(
      { name: 'memory-tokens-capped', options: { ...base, tokenCache }, nodeFlags: [MANIFEST_HEAP_FLAG], ms: tokensMs },
      dir,
      token,
      (s, signal) => distinctTokenSeries(s, emulator, signal),
    );

    for (const [what, series] of [['audit to stdout', toStdout], ['audit to a file', toFile]] as const) {
      if (series.cacheMisses > 1) throw new Error(`${what}: ${series.cacheMisses} token cache misses; the series must be cache hits`);
      const decided = series.samples.at(-1)!.decisions;
      if (decided < CHECKS) throw new Error(`${what}: the server counted ${decided} decisions for ${CHECKS} checks`);
    }
    for (const series of [distinct, capped]) {
      if (series.cacheMisses !== TOKENS) throw new Error(`distinct tokens: ${series.cacheMisses} cache misses for ${TOKENS} tokens`);
    }

    const stdoutTenths = tenths(toStdout.samples, CHECKS);
    const fileTenths = tenths(toFile.samples, CHECKS);
    const seriesRows = stdoutTenths.map((s, k) => [`${k * 10} %`, count(s.decisions), mb(s.rss), mb(fileTenths[k]!.rss)]);
    const cappedTenths = tenths(capped.samples, TOKENS);
    const tokenRows = tenths(distinct.samples, TOKENS).map((s, k) => [count(s.sent), mb(s.rss), mb(cappedTenths[k]!.rss)]);
    const tokensLine = (what: string, series: Series): string => {
      const first = series.samples[0]!.rss;
      const last = series.samples.at(-1)!.rss;
      return (
        `- ${count(TOKENS)} distinct cached tokens, ${what}: RSS ${mb(last)} (peak ${mb(series.peak)}), ` +
        `${((last - first) / TOKENS / 1024).toFixed(2)} KB of RSS per cached token, against ≤ ${mb(TARGET_BYTES)} per process — ` +
        `${met(Math.max(last, series.peak) <= TARGET_BYTES)}.`
      );
    };

    const body = [
      `Measured by \`npm run bench:memory\` ([bench/memory.ts](../bench/memory.ts), ${new Date().toISOString().slice(0, 10)}) on ${machine()}, ${h2load}; ` +
        `the 1-minute load average was ${loadAtStart.toFixed(1)} when the run started (memory figures do not depend on CPU speed).`,
      '',
      'Run it with `npm run bench:memory` (needs h2load: `apt-get install nghttp2-client`); `BENCH_MEMORY_CHECKS` (default 1,000,000), ' +
        '`BENCH_MEMORY_SAMPLES` (100) and `BENCH_MEMORY_TOKENS` (100,000) scale it down. Each phase has a deadline, so a run that stalls fails ' +
        'with the phase named instead of hanging.',
      '',
      `Each server is \`node dist/cli.js serve\` with one worker (\`server.workers: 1\`) and the shipped defaults unless said otherwise, ` +
        `alone on the machine's memory: one server at a time. RSS is the process's VmRSS from /proc, read between rounds of load; ` +
        `peak is its VmHWM. Every check is answered and counted by the server (entra_authz_decisions_total).`,
      '',
      steadyLine('audit to stdout (/dev/null)', toStdout),
      steadyLine('audit to a file', toFile),
      tokensLine("Node's default heap sizing", distinct),
      tokensLine(`\`${MANIFEST_HEAP_FLAG}\` (the Kubernetes manifest's setting)`, capped),
      '',
      `### Steady over ${count(CHECKS)} decisions`,
      '',
      `h2load, ${LOAD.connections} connections × ${LOAD.streams} streams, sends one reader token (a verified-token cache hit, allowed) ` +
        `in ${SAMPLES} rounds of ${count(Math.ceil(CHECKS / SAMPLES))} checks; RSS is read after each round. ` +
        `The slope is a least-squares fit over the rounds after the first ${WARM_UP * 100} % (warm-up); ` +
        `RSS counts as steady when the fitted growth after warm-up stays below ${mb(STEADY_BYTES)}.`,
      '',
      table(['point of the run', 'decisions (server count)', 'RSS, audit to stdout', 'RSS, audit to a file'], seriesRows),
      '',
      `Peak RSS: ${mb(toStdout.peak)} (stdout), ${mb(toFile.peak)} (file). ` +
        `The audit file grew to ${mb(auditFileBytes)}; audit records dropped (\`telemetry.audit.maxBufferBytes\`, default 16 MB): ` +
        `${count(toStdout.auditDropped)} (stdout), ${count(toFile.auditDropped)} (file).`,
      '',
      `### ${count(TOKENS)} distinct cached tokens`,
      '',
      `${count(TOKENS)} valid tokens, each different (minted by the Entra emulator and sent once by a node:http2 client with ` +
        `${TOKENS_IN_FLIGHT} checks in flight, every answer checked to be an allow), audit to stdout. For this row ` +
        `\`entra.tokenCache.maxEntries\` is set to ${count(TOKENS)} (default 10,000) and \`ttlSeconds\` to ` +
        `${TOKEN_CACHE_TTL_SECONDS} (default 300) so that no entry is evicted or expires during the run: the server counted ${count(distinct.cacheMisses)} ` +
        `cache misses (one verification per token) in each run, and the first token sent was still ` +
        `${distinct.oldestStillCached && capped.oldestStillCached ? 'a cache hit' : 'NOT a cache hit'} at the end.`,
      '',
      `Without a heap limit V8 sizes the heap from the machine's memory and lets garbage pile up between full collections, ` +
        `so RSS runs well above what the cache holds; with \`${MANIFEST_HEAP_FLAG}\` it collects sooner. ` +
        `The cache itself holds about 0.5–0.7 KB of heap per token (test/cache/token-cache-memory.test.ts keeps it under 800 bytes).`,
      '',
      table(['tokens sent', "RSS, Node's default heap sizing", `RSS, ${MANIFEST_HEAP_FLAG}`], tokenRows),
    ].join('\n');
    await writeSection(REPORT, 'Memory', body);
    console.log(body);
  } finally {
    await close();
  }
}

await main();
