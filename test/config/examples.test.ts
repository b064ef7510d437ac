import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';

const dir = new URL('../../docs/examples/', import.meta.url);
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));

describe('docs/examples', () => {
  it('holds the documented examples', () => {
    expect(files).toEqual(expect.arrayContaining(['single-tenant-app-roles.yaml', 'multi-tenant-saas.yaml', 'mesh-spiffe.yaml']));
  });

  // Loaded with an empty environment: every ${VAR} in an example has a default.
  it.each(files)('%s loads and validates', (file) => {
    const text = readFileSync(new URL(file, dir), 'utf8');
    expect(() => parseConfig(text, file, { env: {} })).not.toThrow();
  });
});
