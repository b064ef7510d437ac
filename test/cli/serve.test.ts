import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../src/cli/main.js';
import { DEMO, startEntraEmulator, type EntraEmulator } from '../../src/dev/emulator.js';
import { startHarness } from '../support/harness.js';
import { sharedKeyPairs } from '../fixtures/keys.js';

const CLI = join(import.meta.dirname, '../../src/cli.ts');

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI's entry in-process, with what it writes and the exit status it would set. */
async function cli(args: string[]): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

/** Runs the CLI as a user would, as its own process; `whenReady` may act on the running process (e.g. signal it). */
function runCli(args: string[], whenReady?: (stderr: string, kill: (s: NodeJS.Signals) => void) => boolean): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let acted = false;
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (whenReady && !acted) acted = whenReady(stderr, (s) => child.kill(s));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the entra-authz command', () => {
  let dir: string;
  let emulator: EntraEmulator;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'entra-authz-cli-'));
    emulator = await startEntraEmulator({ keyPairs: sharedKeyPairs() });
  });
  afterAll(async () => {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  });

  const config = (entra: Record<string, unknown> = {}) => ({
    server: { listen: '127.0.0.1:0', shutdownGraceSeconds: 2 },
    entra: { authority: emulator.url, tenants: [DEMO.tenantId], audiences: [DEMO.api.appId], ...entra },
    rules: [{ name: 'all', require: { roles: { anyOf: ['Orders.Read'] } } }],
    telemetry: { admin: { listen: '127.0.0.1:0' }, audit: { sink: 'off' } },
  });

  it('validate accepts a good file and exits 0', async () => {
    const file = join(dir, 'good.yaml');
    await writeFile(file, stringify(config()));
    const r = await cli(['validate', '--config', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid');
  });

  it('validate lists every problem with its path and exits 1', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, stringify({ ...config({ tenants: ['not-a-guid'], clockSkew: 5 }), server: { listen: '127.0.0.1:99999' }, rules: [] }));
    const r = await cli(['validate', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('entra.tenants[0]');
    expect(r.stderr).toContain('clockSkew');
    expect(r.stderr).toContain('rules');
    expect(r.stderr).toContain('server.listen: port must be at most 65535');
  });

  it('serve exits 0 after SIGTERM', async () => {
    const file = join(dir, 'serve.yaml');
    await writeFile(file, stringify(config()));
    const r = await runCli(['serve', '--config', file], (stderr, kill) => {
      if (!stderr.includes('all key sets ready')) return false;
      kill('SIGTERM');
      return true;
    });
    expect(r.stderr).toContain('shutting down');
    expect(r.code).toBe(0);
  });

  it('rejects an unknown command, pointing at the one meant and at help, with exit 2', async () => {
    const r = await cli(['serv']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('did you mean "serve"?');
    expect(r.stderr).toContain('entra-authz help');
  });
});

describe('graceful shutdown', () => {
  it('finishes a check in flight before closing', async () => {
    const h = await startHarness();
    await h.waitServing();
    // A token whose kid is unknown makes the check wait for a (slow) JWKS refresh.
    h.emulator.setResponseDelay(300);
    h.emulator.resetCounts();
    const token = await h.emulator.issueToken();
    const inFlight = h.check({ token: await h.emulator.signWithUnpublishedKey() });
    // Close only once the check is provably inside the server, waiting on the key refresh.
    while (h.emulator.fetchCount('jwks') === 0) await new Promise((r) => setImmediate(r));
    const closing = h.app.close(5_000);
    const result = await inFlight;
    await closing;
    expect(result.kind).toBe('response');
    // The server no longer answers after close.
    const after = await h.check({ token });
    expect(after.kind).toBe('error');
    h.emulator.setResponseDelay(0);
    await h.close();
  });
});
