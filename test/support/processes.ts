import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

const STARTUP_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A child process whose stdout and stderr go to one file, read for assertions and failure messages. */
export interface LoggedProcess {
  readonly child: ChildProcess;
  output(): string;
  exited(): Promise<number | null>;
}

/**
 * Spawns `command` with its output in `logFile`. A file, not a pipe: a long run's output would
 * otherwise pile up in the test process, and Envoy cannot open /dev/stdout when it is a socket.
 */
export function spawnLogged(command: string, args: readonly string[], logFile: string, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): LoggedProcess {
  const log = openSync(logFile, 'w');
  const child = spawn(command, args, { ...options, stdio: ['ignore', log, log] });
  closeSync(log);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => readFileSync(logFile, 'utf8'), exited: () => exit };
}

/** SIGTERM, then SIGKILL when the process has not exited after a grace period. */
export async function stopProcess(proc: LoggedProcess): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_GRACE_MS);
  await proc.exited();
  clearTimeout(timer);
}

/**
 * Polls `probe` until it returns a value. Throws with the end of the process's output when the
 * process exits first or nothing comes within the startup time.
 */
export async function waitFor<T>(what: string, proc: LoggedProcess, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`${what}: process exited ${proc.child.exitCode}\n${proc.output().slice(-4000)}`);
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${STARTUP_MS} ms\n${proc.output().slice(-4000)}`);
    await sleep(50);
  }
}

/**
 * Waits for a started process with `ready`, which gets the process's `close` (stop, then
 * `cleanup`) to hand out. When `ready` throws, the process is closed before the error goes on.
 */
export async function whenReady<T>(proc: LoggedProcess, cleanup: () => Promise<void> | void, ready: (close: () => Promise<void>) => Promise<T>): Promise<T> {
  const close = async (): Promise<void> => {
    await stopProcess(proc);
    await cleanup();
  };
  try {
    return await ready(close);
  } catch (err) {
    await close();
    throw err;
  }
}
