/**
 * `server.workers: 2` run for real: `entra-authz serve` as its own process (a primary and two
 * workers), signing keys from the emulator over HTTP, checks over several gRPC connections. What
 * is tested is that the workers stay one service to operators, not speed.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { DEMO, startEntraEmulator, type EntraEmulator } from '../../src/dev/emulator.js';
import { METRIC } from '../../src/telemetry/metrics.js';
import { authorizationClient, type CheckResult } from '../support/harness.js';
import { findSample, parsePrometheus } from '../telemetry/fixtures.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Signing keys the emulator publishes per key set. */
const DEMO_KEYS = 2;

let emulator: EntraEmulator;
let dir: string;
let auditFile: string;
let server: ChildProcess;
let address: string;
let admin: string;
let token: string;
let checksSent = 0;
let configFile: string;
let configValue: Record<string, unknown>;

/** The primary's worker processes (its other children, such as a TypeScript loader's helper, excluded). */
function workerPids(): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(server.pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter((line) => line.includes('src/cli.ts'))
      .map((line) => Number(line.trim().split(/\s+/, 1)[0]));
  } catch {
    return [];
  }
}

/** One Check over its own HTTP/2 connection (a local subchannel pool), as separate Envoys would. */
async function checkOnNewConnection(): Promise<CheckResult> {
  const client = authorizationClient(address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  try {
    checksSent++;
    return await new Promise<CheckResult>((resolve) =>
      client.Check(envoyCheckRequest({ token, path: '/orders/1' }), (err, res) =>
        resolve(err ? { kind: 'error', code: err.code, details: err.details } : { kind: 'response', response: res ?? {} }),
      ),
    );
  } finally {
    client.close();
  }
}

const allowed = (r: CheckResult): boolean => r.kind === 'response' && !r.response.status?.code && r.response.ok_response !== undefined;

async function metrics(): Promise<ReturnType<typeof parsePrometheus>> {
  return parsePrometheus(await (await fetch(`${admin}/metrics`)).text());
}

async function auditLines(): Promise<unknown[]> {
  const text = await readFile(auditFile, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);
}

beforeAll(async () => {
  emulator = await startEntraEmulator();
  dir = await mkdtemp(join(tmpdir(), 'entra-authz-workers-'));
  auditFile = join(dir, 'audit.log');
  configFile = join(dir, 'config.json');
  configValue = {
    server: { listen: '127.0.0.1:0', workers: 2, shutdownGraceSeconds: 2 },
    entra: { authority: emulator.url, tenants: [DEMO.tenantId], audiences: [DEMO.api.appId] },
    rules: [{ name: 'orders', require: { roles: { anyOf: ['Orders.Read'] } } }],
    telemetry: { admin: { listen: '127.0.0.1:0' }, audit: { sink: 'file', file: auditFile } },
  };
  await writeFile(configFile, JSON.stringify(configValue));
  server = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), 'serve', '--config', configFile], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = createInterface({ input: server.stderr! });
  await new Promise<void>((resolve, reject) => {
    server.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { address?: string; admin?: string };
      if (entry.admin) admin = entry.admin;
      if (entry.address) address = entry.address;
      if (admin && address) resolve();
    });
  });
  await vi.waitFor(async () => expect((await fetch(`${admin}/readyz`)).status).toBe(200), { timeout: 60_000, interval: 100 });
  token = await emulator.issueToken({ appId: DEMO.clients.reader.clientId });
}, 90_000);

afterAll(async () => {
  if (server.exitCode === null && server.signalCode === null) {
    server.kill('SIGKILL');
    for (const pid of workerPids()) process.kill(pid, 'SIGKILL');
  }
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

describe('several worker processes, one service', () => {
  it('fetches each signing-key document once for all workers', () => {
    expect(workerPids()).toHaveLength(2);
    // One JWKS per key set (v1 and v2), as a single process fetches them; two workers fetching on
    // their own would make four (more on a loaded machine, where a timed-out fetch is retried).
    expect(emulator.fetchCount('jwks')).toBeGreaterThanOrEqual(2);
    expect(emulator.fetchCount('jwks')).toBeLessThan(4);
  });

  it('answers checks over many connections and counts them all on one /metrics', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, () => checkOnNewConnection()));
    expect(results.every(allowed)).toBe(true);
    const samples = await metrics();
    expect(findSample(samples, METRIC.decisions, { decision: 'allow', reason: 'allowed' })?.value).toBe(checksSent);
    // Every worker holds the same keys: the aggregate is not their sum.
    const perWorker = findSample(samples, METRIC.keysLoaded, { tenant: DEMO.tenantId, version: '2.0' })?.value;
    expect(perWorker).toBe(DEMO_KEYS);
  });

  it('writes every worker’s audit records to one stream of whole lines', async () => {
    await Promise.all(Array.from({ length: 8 }, () => checkOnNewConnection()));
    await vi.waitFor(async () => expect(await auditLines()).toHaveLength(checksSent), { timeout: 5000, interval: 50 });
    for (const record of await auditLines()) expect(record).toMatchObject({ type: 'entra_authz.decision', decision: 'allow' });
  });

  it('replaces a worker that dies, counts it, and keeps answering meanwhile', async () => {
    const [victim] = workerPids();
    const jwksFetches = emulator.fetchCount('jwks');
    process.kill(victim!, 'SIGKILL');
    await vi.waitFor(async () => expect(findSample(await metrics(), METRIC.workerRestarts)?.value).toBe(1), { timeout: 30_000, interval: 50 });
    const meanwhile = await Promise.all(Array.from({ length: 4 }, () => checkOnNewConnection()));
    expect(meanwhile.every(allowed)).toBe(true);
    await vi.waitFor(async () => expect((await fetch(`${admin}/readyz`)).status).toBe(200), { timeout: 60_000, interval: 100 });
    expect(workerPids()).toHaveLength(2);
    expect(workerPids()).not.toContain(victim);
    // The replacement's keys came from the primary's shared answer, not from Entra again.
    expect(emulator.fetchCount('jwks')).toBe(jwksFetches);
  }, 90_000);

  it('applies a reloaded configuration in every worker', async () => {
    await writeFile(configFile, JSON.stringify({ ...configValue, rules: [{ name: 'orders', require: { roles: { anyOf: ['Orders.Write'] } } }] }));
    await vi.waitFor(async () => expect(findSample(await metrics(), METRIC.configReloads, { result: 'success' })?.value).toBe(1), { timeout: 10_000, interval: 50 });
    const after = await Promise.all(Array.from({ length: 8 }, () => checkOnNewConnection()));
    for (const r of after) expect(r.kind === 'response' && r.response.status?.message).toBe('missing_role');
  });

  it('drains every worker on SIGTERM and exits 0', async () => {
    const workers = workerPids();
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
  }, 30_000);
});
