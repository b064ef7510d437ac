/**
 * The servers under test, each in its own process as users run them: the product through
 * `entra-authz serve --config FILE`, the baseline through empty-server.ts. Both are compiled with
 * tsc first and run by plain `node`, as in production: no TypeScript loader thread or esbuild
 * process adds to their CPU time or memory.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Inside node_modules so that the compiled files resolve the project's dependencies. */
const BUILD = join(ROOT, 'node_modules/.cache/entra-authz-bench');

const run = promisify(execFile);

/** Compiles src/ and the baseline servers to plain JavaScript (tsc, the project's settings). */
export async function buildServers(): Promise<void> {
  const tsconfig = join(BUILD, 'tsconfig.json');
  await mkdir(BUILD, { recursive: true });
  await writeFile(
    tsconfig,
    JSON.stringify({
      extends: join(ROOT, 'tsconfig.json'),
      compilerOptions: { noEmit: false, rootDir: ROOT, outDir: BUILD, incremental: true, tsBuildInfoFile: join(BUILD, 'tsbuildinfo') },
      include: [join(ROOT, 'src'), join(ROOT, 'bench/empty-server.ts'), join(ROOT, 'bench/empty-http-server.ts')],
    }),
  );
  await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], { cwd: ROOT });
}

export interface ServerProcess {
  readonly name: string;
  /** host:port of the gRPC listener (the HTTP listener for the empty node:http server). */
  readonly address: string;
  /** host:port of the HTTP authorization listener, when the configuration sets `server.http`. */
  readonly httpAddress?: string;
  readonly pid: number;
  /** Base URL of the admin endpoints (/readyz, /metrics); the product server only. */
  readonly admin?: string;
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited(child);
    clearTimeout(timer);
  };
}

/** Reads JSON lines from `stream` until `pick` returns a value; fails if the process exits first. */
function waitForLine<T>(child: ChildProcess, stream: NodeJS.ReadableStream, pick: (line: Record<string, unknown>) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const tail: string[] = [];
    const lines = createInterface({ input: stream });
    const onExit = (): void => reject(new Error(`server exited before it was ready:\n${tail.join('\n')}`));
    child.once('exit', onExit);
    lines.on('line', (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      let value: T | undefined;
      try {
        value = pick(JSON.parse(line) as Record<string, unknown>);
      } catch {
        return;
      }
      if (value === undefined) return;
      child.off('exit', onExit);
      resolve(value);
    });
  });
}

const EMPTY_SERVERS = {
  grpc: { script: 'bench/empty-server.js', name: 'empty grpc-js handler' },
  http: { script: 'bench/empty-http-server.js', name: 'empty node:http handler' },
} as const;

/** How a server process is started. */
export interface StartOptions {
  /** Extra options for `node` (e.g. `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
}

/** The baseline for `mode`: an empty grpc-js Check handler, or an empty node:http handler answering 200. */
export async function startEmptyServer(mode: keyof typeof EMPTY_SERVERS = 'grpc', options: StartOptions = {}): Promise<ServerProcess> {
  const { script, name } = EMPTY_SERVERS[mode];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), join(BUILD, script)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await waitForLine(child, child.stdout!, (l) => (typeof l['address'] === 'string' ? l['address'] : undefined));
  return { name, address, pid: child.pid!, stop: stopper(child) };
}

/**
 * `entra-authz serve` with `config` (written to `dir`). Audit records on stdout go to /dev/null:
 * they are built, serialised and written, but no collector competes for the CPU. Resolves once
 * /readyz answers 200 (signing keys loaded).
 */
export async function startProductServer(name: string, config: unknown, dir: string, options: StartOptions = {}): Promise<ServerProcess> {
  const file = join(dir, `${name.replace(/[^a-z0-9]+/gi, '-')}.json`);
  await writeFile(file, JSON.stringify(config));
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), join(BUILD, 'src/cli.js'), 'serve', '--config', file], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stop = stopper(child);
  const found: { address?: string; httpAddress?: string; admin?: string } = {};
  const wantsHttp = (config as { server?: { http?: unknown } }).server?.http !== undefined;
  await waitForLine(child, child.stderr!, (l) => {
    // Both listeners log `address`; the HTTP one says so in its message.
    if (typeof l['address'] === 'string') {
      if (String(l['msg']).startsWith('HTTP')) found.httpAddress = l['address'];
      else found.address = l['address'];
    }
    if (typeof l['admin'] === 'string') found.admin = l['admin'];
    const complete = found.address !== undefined && found.admin !== undefined && (!wantsHttp || found.httpAddress !== undefined);
    return complete ? found : undefined;
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  child.stderr!.resume();
  for (let i = 0; i < 500; i++) {
    const ready = await fetch(`${found.admin}/readyz`).then((r) => r.ok, () => false);
    if (ready) return { name, address: found.address!, ...(found.httpAddress ? { httpAddress: found.httpAddress } : {}), pid: child.pid!, admin: found.admin!, stop };
    await new Promise((r) => setTimeout(r, 20));
  }
  await stop();
  throw new Error(`${name}: not ready after 10 s`);
}

/** Resident set size of a process and all its descendants (workers), in bytes: now and peak. */
export async function residentMemory(pid: number): Promise<{ rss: number; peak: number }> {
  const { stdout } = await run('ps', ['-e', '-o', 'pid=,ppid=']);
  const children = new Map<number, number[]>();
  for (const line of stdout.trim().split('\n')) {
    const [p, pp] = line.trim().split(/\s+/).map(Number) as [number, number];
    children.set(pp, [...(children.get(pp) ?? []), p]);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  let rss = 0;
  let peak = 0;
  for (const p of tree) {
    const status = await readFile(`/proc/${p}/status`, 'utf8').catch(() => '');
    rss += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    peak += Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  }
  return { rss, peak };
}

/**
 * The sum of every series of the Prometheus metric `name` on the server's /metrics whose labels
 * include all of `labels` (0 when there is none).
 */
export async function metricValue(admin: string, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  const text = await fetch(`${admin}/metrics`).then((r) => r.text());
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    const series = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (series?.[1] !== name || !wanted.every((w) => (series[2] ?? '').includes(w))) continue;
    sum += Number(series[3]);
  }
  return sum;
}
