import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'entra-authz.js');

function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('the installed entra-authz command (bin/entra-authz.js)', () => {
  it('works in this checkout after a plain npm ci, built or not', async () => {
    const { code, stdout } = await run(BIN, ['help']);
    expect(code).toBe(0);
    expect(stdout).toContain('entra-authz serve');
  });

  it('says how to build when there is neither dist/ nor tsx to run the sources', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'entra-authz-bin-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(BIN, join(dir, 'bin', 'entra-authz.js'));
      const { code, stdout, stderr } = await run(join(dir, 'bin', 'entra-authz.js'), ['--help']);
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toContain('dist/cli.js is missing');
      expect(stderr).toContain('npm run build');
      expect(stderr).not.toContain('ERR_MODULE_NOT_FOUND');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
