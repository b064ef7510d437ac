import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('./audit-exit.child.ts', import.meta.url));

describe('audit records at process exit', () => {
  it('keeps every record written before the last turn of the event loop when the process exits without closing the sink', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'entra-authz-audit-exit-')), 'audit.log');
    await new Promise<void>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', CHILD, file, '25'], { timeout: 15_000, cwd: fileURLToPath(new URL('../..', import.meta.url)) }, (err, _out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(),
      );
    });
    const ids = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { decisionId: string }).decisionId);
    expect(ids).toEqual(Array.from({ length: 25 }, (_, i) => `decision-${i}`));
  }, 20_000);
});
