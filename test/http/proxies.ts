import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What the echo upstream received: method, URL and every header as sent (repeats kept). */
export interface Echoed {
  readonly method: string;
  readonly url: string;
  readonly headers: readonly (readonly [string, string])[];
}

export interface EchoUpstream {
  readonly port: number;
  /** Values of one header the upstream received, lower-cased name. */
  close(): Promise<void>;
}

/** An upstream that answers every request with what it received, as JSON. */
export async function startEcho(): Promise<EchoUpstream> {
  const server: Server = createServer((req, res) => {
    const headers: [string, string][] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([(req.rawHeaders[i] ?? '').toLowerCase(), req.rawHeaders[i + 1] ?? '']);
    const body = JSON.stringify({ method: req.method ?? '', url: req.url ?? '', headers } satisfies Echoed);
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'echo' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The values the echo upstream saw for `name`. */
export const echoedHeader = (echoed: Echoed, name: string): string[] => echoed.headers.filter(([k]) => k === name).map(([, v]) => v);

/** A free loopback port for a proxy that cannot report the one it bound (small race, loopback only). */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface RunningProxy {
  readonly url: string;
  /** Everything the proxy printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs a proxy binary in a temporary directory until `port` accepts connections. `files` are
 * written into the directory first; `args` may use `{dir}`.
 */
export async function runProxy(binary: string, args: readonly string[], files: Record<string, string>, port: number): Promise<RunningProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'entra-authz-proxy-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text.replaceAll('{dir}', dir));
  let output = '';
  const child: ChildProcess = spawn(binary, args.map((a) => a.replaceAll('{dir}', dir)), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`${binary} did not start listening on ${port}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `http://127.0.0.1:${port}`, output: () => output, stop };
}

/** A shipped proxy configuration with its service addresses pointed at the test's processes. */
export async function shippedConfig(path: string, replacements: Record<string, string>): Promise<string> {
  let text = await readFile(new URL(`../../${path}`, import.meta.url), 'utf8');
  for (const [from, to] of Object.entries(replacements)) {
    if (!text.includes(from)) throw new Error(`${path} no longer contains ${JSON.stringify(from)}`);
    text = text.replaceAll(from, to);
  }
  return text;
}
