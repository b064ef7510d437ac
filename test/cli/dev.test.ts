import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli.ts');

/** Runs one shell script in the checkout, as a user pasting the banner's lines would. */
function shell(script: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { cwd: ROOT, timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout });
    });
  });
}

describe('entra-authz dev', () => {
  let child: ChildProcessByStdio<null, Readable, Readable>;
  let banner: string;

  beforeAll(async () => {
    const loopback = '127.0.0.1:0';
    child = spawn(
      process.execPath,
      ['--import', 'tsx', CLI, 'dev', '--listen', loopback, '--http-listen', loopback, '--admin-listen', loopback, '--emulator-listen', loopback],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    banner = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('rotate signing keys')) resolve(stdout);
      });
      child.on('exit', (code) => reject(new Error(`dev exited with ${code}: ${stderr}`)));
    });
  }, 60_000);

  afterAll(async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  });

  /** The banner line that ends with `# <comment>`, without the comment. */
  const command = (comment: string): string => {
    const line = banner.split('\n').find((l) => l.trimEnd().endsWith(`# ${comment}`));
    if (line === undefined) throw new Error(`no banner line ends with "# ${comment}":\n${banner}`);
    return line.slice(0, line.lastIndexOf('#')).trim();
  };
  const tokenLine = (): string => {
    const line = banner.split('\n').find((l) => l.trim().startsWith('TOKEN=$('));
    if (line === undefined) throw new Error(`no TOKEN line in the banner:\n${banner}`);
    return line.trim();
  };

  it('lists the HTTP authorization listener beside the gRPC one, on the address it bound', () => {
    const http = /HTTP forward auth \(proxy → here\)\s+(127\.0\.0\.1:\d+)/.exec(banner)?.[1];
    const grpc = /ext_authz gRPC \(Envoy → here\)\s+(127\.0\.0\.1:\d+)/.exec(banner)?.[1];
    expect(http).toBeDefined();
    expect(grpc).toBeDefined();
    expect(http).not.toMatch(/:0$/);
    expect(http).not.toBe(grpc);
  });

  it('prints examples a user can paste from a checkout: npx entra-authz, not the sources', () => {
    expect(banner).not.toContain('src/cli.ts');
    expect(command('allow')).toMatch(/^npx entra-authz check /);
  });

  it('allows the demo reader over HTTP forward auth and answers 401 without a token, as the banner says', async () => {
    const allowed = await shell(`${tokenLine()}\n${command('HTTP mode: 200 allow')}`);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/^HTTP\/1\.1 200 /);
    expect(allowed.stdout.toLowerCase()).toContain('x-entra-roles: orders.read');

    const denied = await shell(command('HTTP mode: 401 token_missing'));
    expect(denied.stdout).toMatch(/^HTTP\/1\.1 401 /);
    expect(denied.stdout).toContain('"error":"token_missing"');
  });

  it('allows the demo reader over gRPC with the banner\'s npx entra-authz check line', async () => {
    const r = await shell(`${tokenLine()}\n${command('allow')}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"decision": "allow"');
  }, 60_000);
});
