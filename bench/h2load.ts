/**
 * nghttp2's `h2load` as the load generator: its own process (a grpc-js client in the bench process
 * would be the bottleneck and hide the server's cost), speaking HTTP/2 as Envoy's ext_authz
 * cluster does, or HTTP/1.1 (`--h1`) as forward-auth proxies do. Debian/Ubuntu package:
 * `nghttp2-client`.
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

export interface LoadShape {
  /** Connections. */
  readonly connections: number;
  /** Concurrent streams per connection (HTTP/2); over HTTP/1.1 keep it at 1, as proxies do not pipeline. */
  readonly streams: number;
}

/** What h2load sends, and the class of status every answer must have. */
export interface LoadTarget {
  readonly args: readonly string[];
  readonly status: '2xx' | '4xx';
}

/** Envoy's ext_authz gRPC Check over HTTP/2, the framed CheckRequest in `bodyFile`. */
export function grpcCheck(address: string, bodyFile: string): LoadTarget {
  return { args: ['-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://${address}${CHECK_PATH}`], status: '2xx' };
}

/**
 * A bodiless GET over HTTP/1.1 keep-alive connections, as a forward-auth proxy sends its
 * authorization requests. `host` becomes the Host header (h2load writes `:authority` as Host).
 */
export function http1Request(address: string, path: string, host: string, headers: Readonly<Record<string, string>>, status: LoadTarget['status']): LoadTarget {
  const extra = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  return { args: ['--h1', '-H', `:authority: ${host}`, ...extra, `http://${address}${path}`], status };
}

function args(target: LoadTarget, shape: LoadShape): string[] {
  return ['-c', String(shape.connections), '-m', String(shape.streams), ...target.args];
}

/** h2load's req/s from its output; throws unless every request was answered with `status`. */
export function rateFromOutput(stdout: string, status: LoadTarget['status']): number {
  const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout);
  // h2load counts a 4xx answer as "failed"; "errored" and "timeout" are requests without an answer.
  const done = /requests: .* (\d+) done, \d+ succeeded, \d+ failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  // Every answer must be of the expected class: anything else means the scenario measured another outcome.
  // A timed run may stop with answers whose streams had not ended: counted in the status codes, not as done.
  const expected = ['2xx', '3xx', '4xx', '5xx'].indexOf(status) + 1;
  const othersAnswered = codes !== null && codes.slice(1).some((count, i) => i + 1 !== expected && count !== '0');
  const allExpected = codes !== null && done !== null && Number(codes[expected]) >= Number(done[1]);
  if (!rate || !done || done[2] !== '0' || done[3] !== '0' || othersAnswered || !allExpected) {
    throw new Error(`h2load: failed requests, answers other than ${status}, or unexpected output\n${stdout}`);
  }
  return Number(rate[1]);
}

/** Requests per second for `checks` requests as fast as the server answers, after a 1 s warm-up. */
export async function saturatedRate(target: LoadTarget, shape: LoadShape, checks: number): Promise<number> {
  const { stdout } = await run('h2load', ['-n', String(checks), '--warm-up-time', '1', ...args(target, shape)]);
  return rateFromOutput(stdout, target.status);
}

/**
 * Sends exactly `checks` requests, as fast as the server answers (no warm-up); resolves with the
 * rate. `signal` stops h2load.
 */
export async function sendChecks(target: LoadTarget, shape: LoadShape, checks: number, signal?: AbortSignal): Promise<number> {
  const { stdout } = await run('h2load', ['-n', String(checks), ...args(target, shape)], { signal });
  return rateFromOutput(stdout, target.status);
}

/**
 * Round-trip times (µs) of requests sent at a fixed rate on one connection for `seconds`
 * (from h2load's `--log-file`). The first second is dropped as warm-up.
 */
export async function pacedLatencies(target: LoadTarget, rps: number, seconds: number, logFile: string): Promise<number[]> {
  const { stdout } = await run('h2load', [
    '-D', String(seconds + 1), '--rps', String(rps), '--log-file', logFile,
    ...args(target, { connections: 1, streams: 64 }),
  ]);
  rateFromOutput(stdout, target.status);
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
