import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect } from '../support/loopback.js';
import { spawnLogged, waitFor, whenReady } from '../support/processes.js';

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
  const proc = spawnLogged(
    binary,
    args.map((a) => a.replaceAll('{dir}', dir)),
    join(dir, 'proxy.log'),
    { cwd: dir, env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } },
  );
  return whenReady(
    proc,
    () => rm(dir, { recursive: true, force: true }),
    async (stop) => {
      await waitFor(`${binary} listening on ${port}`, proc, async () => ((await canConnect(port)) ? true : undefined));
      return { url: `http://127.0.0.1:${port}`, output: proc.output, stop };
    },
  );
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
