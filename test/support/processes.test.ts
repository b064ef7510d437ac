import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnLogged, waitFor, whenReady } from './processes.js';

const dir = mkdtempSync(join(tmpdir(), 'entra-authz-processes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A node process running `script`, its output in a log file of its own. */
const node = (name: string, script: string) => spawnLogged(process.execPath, ['-e', script], join(dir, `${name}.log`));

describe('process helpers of the real-proxy suites', () => {
  it('waits for a process to print what it is ready with, and collects its output', async () => {
    const proc = node('ready', "console.log('starting'); setTimeout(() => console.error('listening on 1234'), 100); setInterval(() => {}, 1000);");
    const port = await whenReady(proc, () => undefined, async (close) => {
      const found = await waitFor('listening', proc, () => /listening on (\d+)/.exec(proc.output())?.[1]);
      await close();
      return found;
    });
    expect(port).toBe('1234');
    expect(proc.output()).toContain('starting');
    expect(proc.child.signalCode).toBe('SIGTERM');
  });

  it('fails with the end of the output when the process exits before it is ready', async () => {
    const proc = node('exits', "console.error('bad config: line 3'); process.exit(3);");
    await expect(waitFor('proxy listening', proc, () => undefined)).rejects.toThrow(/proxy listening: process exited 3\nbad config: line 3/);
  });

  it('stops the process and cleans up when waiting for it fails', async () => {
    const proc = node('stuck', 'setInterval(() => {}, 1000);');
    let cleaned = false;
    const failing = whenReady(proc, () => void (cleaned = true), () => Promise.reject(new Error('never ready')));
    await expect(failing).rejects.toThrow('never ready');
    expect(proc.child.signalCode).toBe('SIGTERM');
    expect(cleaned).toBe(true);
  });
});
