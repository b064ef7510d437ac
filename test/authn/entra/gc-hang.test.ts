import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('./gc-hang.child.ts', import.meta.url));
/** The child's whole run, tsx start-up included; a fetch left to undici's default would take 300 s. */
const CHILD_LIMIT_MS = 15_000;

describe('key fetch timeout under garbage collection', () => {
  it('times out a hung key fetch after fetchTimeoutMs while collections run', async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--expose-gc', '--import', 'tsx', CHILD],
        { timeout: CHILD_LIMIT_MS, cwd: fileURLToPath(new URL('../../..', import.meta.url)) },
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
      );
    });
    const result = JSON.parse(stdout.trim()) as { elapsedMs: number; lastError?: { kind: string } };
    expect(result.lastError?.kind).toBe('timeout');
    expect(result.elapsedMs).toBeGreaterThanOrEqual(1000);
    expect(result.elapsedMs).toBeLessThan(5000);
  }, 20_000);
});
