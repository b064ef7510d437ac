import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'entra-authz.js');
const COMMANDS = ['serve', 'validate', 'dev', 'emulator', 'check', 'explain'];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(nodeArgs: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, nodeArgs, { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The CLI's entry in-process, with what it writes and the exit status it would set. */
async function cli(...args: string[]): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

describe('entra-authz help', () => {
  it('answers --help on every command (and -h) with that command\'s usage, exit 0', async () => {
    const results = await Promise.all([...COMMANDS.map((c) => cli(c, '--help')), cli('check', '--server', 'x:1', '-h')]);
    results.forEach((r, i) => {
      const command = COMMANDS[i] ?? 'check';
      expect(r.code, command).toBe(0);
      expect(r.stderr, command).toBe('');
      expect(r.stdout, command).toContain(`entra-authz ${command}`);
    });
  });

  it('prints the overview for help, --help or nothing, and a command\'s usage for help <command>', async () => {
    const [help, dashHelp, none, helpServe] = await Promise.all([cli('help'), cli('--help'), cli(), cli('help', 'serve')]);
    for (const r of [help, dashHelp, none]) {
      expect(r.code).toBe(0);
      for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\s`, 'm'));
    }
    expect(helpServe.code).toBe(0);
    expect(helpServe.stdout).toContain('Usage: entra-authz serve --config FILE');
  });

  it('prints the package version for --version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const [long, short] = await Promise.all([cli('--version'), cli('-v')]);
    expect(long).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    expect(short.stdout).toBe(`${version}\n`);
  });

  it('suggests the command or option that was meant and exits 2', async () => {
    const [command, option, missing] = await Promise.all([cli('servee'), cli('validate', '--confg', 'x.yaml'), cli('serve')]);
    expect(command.code).toBe(2);
    expect(command.stderr).toContain('unknown command "servee" — did you mean "serve"?');
    expect(option.code).toBe(2);
    expect(option.stderr).toContain("entra-authz validate: unknown option '--confg' — did you mean --config?");
    expect(option.stderr).toContain('Run "entra-authz validate --help"');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('entra-authz serve: needs --config FILE');
  });
});

describe('entra-authz validate', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'entra-authz-validate-'));
    writeFileSync(join(dir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, yaml: string): string => {
    writeFileSync(join(dir, name), yaml);
    return join(dir, name);
  };
  const BASE = 'entra:\n  tenants: ["11111111-1111-4111-8111-111111111111"]\n  audiences: [api://x]\nrules:\n  - name: a\n';

  it('checks that the certificate, key and CA files exist and are files, and the audit directory, not only at serve', async () => {
    const file = write(
      'tls.yaml',
      `server:\n  tls:\n    certFile: ${join(dir, 'missing.crt')}\n    keyFile: ${dir}\n    caFile: ${join(dir, 'ca.crt')}\n    requireClientCert: true\n` +
        `  http:\n    listen: 127.0.0.1:9002\n    tls:\n      certFile: ${join(dir, 'missing-http.crt')}\n      keyFile: ${join(dir, 'ca.crt')}\n` +
        `telemetry:\n  audit: { sink: file, file: ${join(dir, 'no-such-dir', 'audit.log')} }\n${BASE}`,
    );
    const r = await cli('validate', '--config', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`server.tls.certFile: ${join(dir, 'missing.crt')} does not exist`);
    expect(r.stderr).toContain(`server.tls.keyFile: ${dir} is not a regular file`);
    expect(r.stderr).toContain(`server.http.tls.certFile: ${join(dir, 'missing-http.crt')} does not exist`);
    expect(r.stderr).not.toContain('server.http.tls.keyFile');
    expect(r.stderr).toContain(`telemetry.audit.file: ${join(dir, 'no-such-dir')} does not exist`);
    expect(r.stderr).not.toContain('server.tls.caFile');
  });

  it('reports unknown keys with a suggestion and YAML errors with line and column, in plain words', async () => {
    const [keys, yaml] = await Promise.all([
      cli('validate', '--config', write('keys.yaml', BASE.replace('audiences', 'audience'))),
      cli('validate', '--config', write('yaml.yaml', `${BASE}  name: b\n`)),
    ]);
    expect(keys.code).toBe(1);
    expect(keys.stderr).toContain('entra.audience: unknown key — did you mean "audiences"?');
    expect(yaml.code).toBe(1);
    expect(yaml.stderr).toMatch(/line 6, column \d+: /);
  });

  it('says valid and exits 0 for a good file', async () => {
    const r = await cli('validate', '--config', write('good.yaml', BASE));
    expect(r).toMatchObject({ code: 0, stdout: `${join(dir, 'good.yaml')}: valid\n` });
  });
});

describe('the installed entra-authz command (bin/entra-authz.js)', () => {
  it('works in this checkout after a plain npm ci, built or not', async () => {
    const { code, stdout } = await run([BIN, 'help', 'serve']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: entra-authz serve');
  });

  it('says how to build when there is neither dist/ nor tsx to run the sources', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'entra-authz-bin-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(BIN, join(dir, 'bin', 'entra-authz.js'));
      const { code, stdout, stderr } = await run([join(dir, 'bin', 'entra-authz.js'), '--help']);
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
