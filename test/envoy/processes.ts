import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT, type Obj } from '../deploy/helpers.js';
import { spawnLogged, waitFor, whenReady, type LoggedProcess } from '../support/processes.js';

/** Removes a process's temporary directory once it has stopped. */
const removeDir = (dir: string) => (): void => rmSync(dir, { recursive: true, force: true });

/** Envoy with its output in `<dir>/envoy.log`: the shipped access log writes to /dev/stdout. */
function spawnEnvoy(bin: string, args: string[], dir: string): LoggedProcess {
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
  return whenReady(proc, removeDir(dir), async (close) => {
    const adminUrl = await waitFor('envoy admin', proc, () => {
      try {
        const address = readFileSync(adminFile, 'utf8').trim();
        return address === '' ? undefined : `http://${address}`;
      } catch {
        return undefined;
      }
    });
    await waitFor('envoy ready', proc, async () => {
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
      close,
    };
  });
}

/** Runs `envoy --mode validate` on a bootstrap; resolves with the exit code and output. */
export async function validateWithEnvoy(bin: string, bootstrap: Obj): Promise<{ code: number | null; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'entra-authz-envoy-validate-'));
  const configFile = join(dir, 'envoy.yaml');
  writeFileSync(configFile, stringify(bootstrap));
  const proc = spawnEnvoy(bin, ['--mode', 'validate', '-c', configFile], dir);
  const code = await proc.exited();
  const output = proc.output();
  removeDir(dir)();
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
  const proc = spawnLogged(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts'), 'serve', '--config', configFile], join(dir, 'entra-authz.log'), {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
  });
  return whenReady(proc, removeDir(dir), async (close) => {
    const port = await waitFor('entra-authz listening', proc, () => {
      const m = /"address":"[^"]*:(\d+)"[^\n]*ext_authz gRPC server listening|ext_authz gRPC server listening[^\n]*"address":"[^"]*:(\d+)"/.exec(proc.output());
      return m ? Number(m[1] ?? m[2]) : undefined;
    });
    if (opts.waitForKeys ?? true) await waitFor('entra-authz signing keys', proc, () => (proc.output().includes('all key sets ready') ? true : undefined));
    return {
      port,
      pid: proc.child.pid ?? 0,
      output: proc.output,
      signal: (sig) => void proc.child.kill(sig),
      close,
    };
  });
}
