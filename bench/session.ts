/**
 * What every benchmark run starts from and leaves behind: h2load (or a message saying how to get
 * it), the servers compiled, a scratch directory and the Entra emulator.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEntraEmulator, type EntraEmulator } from '../src/dev/emulator.js';
import { requireH2load } from './h2load.js';
import { buildServers } from './servers.js';

export interface BenchSession {
  /** h2load's version line, for the report. */
  readonly h2load: string;
  /** The 1-minute load average when the run started, for the report. */
  readonly loadAtStart: number;
  /** A scratch directory, removed by `close`. */
  readonly dir: string;
  readonly emulator: EntraEmulator;
  /** Stops the emulator and removes the scratch directory. */
  close(): Promise<void>;
}

export async function openBenchSession(name: string): Promise<BenchSession> {
  const h2load = await requireH2load();
  const loadAtStart = loadavg()[0] ?? 0;
  process.stderr.write('compiling the servers…\n');
  await buildServers();
  const dir = await mkdtemp(join(tmpdir(), `entra-authz-${name}-`));
  const emulator = await startEntraEmulator();
  return {
    h2load,
    loadAtStart,
    dir,
    emulator,
    async close() {
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
