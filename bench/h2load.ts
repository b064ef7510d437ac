/**
 * nghttp2's `h2load` as the load generator: its own process (a grpc-js client in the bench process
 * would be the bottleneck and hide the server's cost), speaking HTTP/2 as Envoy's ext_authz
 * cluster does. Debian/Ubuntu package: `nghttp2-client`.
 */
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

/** Throws with an installation hint when h2load is not on the PATH. */
export async function requireH2load(): Promise<string> {
  try {
    const { stdout } = await run('h2load', ['--version']);
    return stdout.trim();
  } catch {
    throw new Error(
      'h2load (from nghttp2) is needed to run the benchmark and was not found on the PATH.\n' +
        'Install it with: sudo apt-get install nghttp2-client   (Debian/Ubuntu)\n' +
        '             or: brew install nghttp2                   (macOS)',
    );
  }
}

function args(address: string, bodyFile: string, shape: LoadShape): string[] {
  return [
    '-c', String(shape.connections), '-m', String(shape.streams),
    '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers',
    `http://${address}${CHECK_PATH}`,
  ];
}

export interface LoadShape {
  /** HTTP/2 connections. */
  readonly connections: number;
  /** Concurrent streams per connection. */
  readonly streams: number;
}

function parse(stdout: string): { rate: number } {
  const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout);
  const failed = /requests: .* (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  if (!rate || !failed || failed.slice(1).some((n) => n !== '0')) throw new Error(`h2load: failed requests or unexpected output\n${stdout}`);
  return { rate: Number(rate[1]) };
}

/** Requests per second for `checks` requests as fast as the server answers, after a 1 s warm-up. */
export async function saturatedRate(address: string, bodyFile: string, shape: LoadShape, checks: number): Promise<number> {
  const { stdout } = await run('h2load', ['-n', String(checks), '--warm-up-time', '1', ...args(address, bodyFile, shape)]);
  return parse(stdout).rate;
}

/**
 * Round-trip times (µs) of requests sent at a fixed rate on one connection for `seconds`
 * (from h2load's `--log-file`). The first second is dropped as warm-up.
 */
export async function pacedLatencies(address: string, bodyFile: string, rps: number, seconds: number, logFile: string): Promise<number[]> {
  const { stdout } = await run('h2load', [
    '-D', String(seconds + 1), '--rps', String(rps), '--log-file', logFile,
    ...args(address, bodyFile, { connections: 1, streams: 64 }),
  ]);
  parse(stdout);
  const log = await readFile(logFile, 'utf8');
  // h2load appends to an existing log file.
  await rm(logFile);
  const rows = log
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split('\t').map(Number) as [number, number, number]);
  const first = rows.reduce((min, [start]) => Math.min(min, start), Infinity);
  return rows.filter(([start]) => start >= first + 1_000_000).map(([, , micros]) => micros);
}

/** The value below which `p` (0..1) of the samples fall (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}
