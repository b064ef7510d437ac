import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT, type Obj } from '../deploy/helpers.js';

const STARTUP_MS = 15_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A child process whose stdout and stderr go to one file, read for assertions and errors. */
interface Captured {
  readonly child: ChildProcess;
  output(): string;
  exited(): Promise<number | null>;
}

function spawnLogged(command: string, args: string[], logFile: string, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Captured {
  const log = openSync(logFile, 'w');
  const child = spawn(command, args, { ...options, stdio: ['ignore', log, log] });
  closeSync(log);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => readFileSync(logFile, 'utf8'), exited: () => exit };
}

async function stop(c: Captured): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.child.kill('SIGTERM');
  const timer = setTimeout(() => c.child.kill('SIGKILL'), 5_000);
  await c.exited();
  clearTimeout(timer);
}

async function until<T>(what: string, c: Captured, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    if (c.child.exitCode !== null) throw new Error(`${what}: process exited ${c.child.exitCode}\n${c.output().slice(-4000)}`);
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${STARTUP_MS} ms\n${c.output().slice(-4000)}`);
    await sleep(50);
  }
}

/**
 * Envoy with its output in `<dir>/envoy.log`. A file, not a pipe: the shipped access log writes to
 * /dev/stdout, which Envoy cannot open when stdout is a socket.
 */
function spawnEnvoy(bin: string, args: string[], dir: string): Captured {
  return spawnLogged(bin, [...args, '--disable-hot-restart', '-l', 'warning'], join(dir, 'envoy.log'));
}

export interface RunningEnvoy {
  readonly adminUrl: string;
  /** The port a named listener bound (all listeners bind port 0). */
  listenerPort(name: string): number;
  /** One counter or gauge from admin `/stats`, 0 when absent. */
  stat(name: string): Promise<number>;
  /** Envoy's log and access log (JSON lines) so far. */
  output(): string;
  close(): Promise<void>;
}

/**
 * Runs Envoy on a rendered bootstrap and waits until it is LIVE (clusters initialised, first
 * health checks done, listeners bound). One worker thread: the machines running tests are small.
 */
export async function startEnvoy(bin: string, bootstrap: Obj): Promise<RunningEnvoy> {
  const dir = mkdtempSync(join(tmpdir(), 'entra-authz-envoy-'));
  const configFile = join(dir, 'envoy.yaml');
  const adminFile = join(dir, 'admin-address');
  writeFileSync(configFile, stringify(bootstrap));
  const proc = spawnEnvoy(bin, ['-c', configFile, '--admin-address-path', adminFile, '--concurrency', '1'], dir);
  try {
    const adminUrl = await until('envoy admin', proc, () => {
      try {
        const address = readFileSync(adminFile, 'utf8').trim();
        return address === '' ? undefined : `http://${address}`;
      } catch {
        return undefined;
      }
    });
    await until('envoy ready', proc, async () => {
      const r = await fetch(`${adminUrl}/ready`).catch(() => undefined);
      return r?.status === 200 ? true : undefined;
    });
    const listeners = (await (await fetch(`${adminUrl}/listeners?format=json`)).json()) as {
      listener_statuses: { name: string; local_address: { socket_address: { port_value: number } } }[];
    };
    const ports = new Map(listeners.listener_statuses.map((l) => [l.name, l.local_address.socket_address.port_value]));
    return {
      adminUrl,
      listenerPort: (name) => {
        const port = ports.get(name);
        if (port === undefined) throw new Error(`envoy has no listener ${name}`);
        return port;
      },
      stat: async (name) => {
        const text = await (await fetch(`${adminUrl}/stats?filter=${encodeURIComponent(`^${name.replace(/\./g, '\\.')}$`)}`)).text();
        const m = /: (\d+)\s*$/m.exec(text);
        return m ? Number(m[1]) : 0;
      },
      output: proc.output,
      close: async () => {
        await stop(proc);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop(proc);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Runs `envoy --mode validate` on a bootstrap; resolves with the exit code and output. */
export async function validateWithEnvoy(bin: string, bootstrap: Obj): Promise<{ code: number | null; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'entra-authz-envoy-validate-'));
  const configFile = join(dir, 'envoy.yaml');
  writeFileSync(configFile, stringify(bootstrap));
  const proc = spawnEnvoy(bin, ['--mode', 'validate', '-c', configFile], dir);
  const code = await proc.exited();
  const output = proc.output();
  rmSync(dir, { recursive: true, force: true });
  return { code, output };
}

export interface RunningEntraAuthz {
  /** `127.0.0.1:<port>` of the ext_authz gRPC listener. */
  readonly port: number;
  readonly pid: number;
  output(): string;
  /** Sends a signal (e.g. SIGHUP: reload certificates). */
  signal(sig: NodeJS.Signals): void;
  close(): Promise<void>;
}

/**
 * Runs `entra-authz serve --config FILE` as its own process (the way users run it) and waits for
 * its gRPC listener and, unless told not to, its signing keys. `config` is written as YAML; `env`
 * is added to the environment.
 */
export async function startEntraAuthz(config: Obj, env: Record<string, string> = {}, opts: { waitForKeys?: boolean } = {}): Promise<RunningEntraAuthz> {
  const dir = mkdtempSync(join(tmpdir(), 'entra-authz-serve-'));
  const configFile = join(dir, 'config.yaml');
  writeFileSync(configFile, stringify(config));
  // Output to a file: audit records of a long run would otherwise pile up in this process.
  const proc = spawnLogged(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts'), 'serve', '--config', configFile], join(dir, 'entra-authz.log'), {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
  });
  try {
    const port = await until('entra-authz listening', proc, () => {
      const m = /"address":"[^"]*:(\d+)"[^\n]*ext_authz gRPC server listening|ext_authz gRPC server listening[^\n]*"address":"[^"]*:(\d+)"/.exec(proc.output());
      return m ? Number(m[1] ?? m[2]) : undefined;
    });
    if (opts.waitForKeys ?? true) await until('entra-authz signing keys', proc, () => (proc.output().includes('all key sets ready') ? true : undefined));
    return {
      port,
      pid: proc.child.pid ?? 0,
      output: proc.output,
      signal: (sig) => void proc.child.kill(sig),
      close: async () => {
        await stop(proc);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop(proc);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
