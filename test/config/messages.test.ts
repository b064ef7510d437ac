import { describe, expect, it } from 'vitest';
import { closest } from '../../src/config/suggest.js';
import { configProblems as problems } from '../fixtures/config-problems.js';

const TENANT = '11111111-1111-4111-8111-111111111111';
const RULES = 'rules:\n  - name: a\n';

describe('configuration problems in plain words', () => {
  it('points at a mistyped key and suggests the key that was meant', () => {
    expect(problems(`entra:\n  tenant: [${TENANT}]\n  audiences: [api://x]\n${RULES}`)).toEqual([
      'entra.tenants: is required',
      'entra.tenant: unknown key — did you mean "tenants"?',
    ]);
    expect(problems(`entra:\n  tenants: [${TENANT}]\n  audiences: [api://x]\nrulez:\n  - name: a\n`)).toContain('rulez: unknown key — did you mean "rules"?');
  });

  it('lists the keys known at that place when nothing is close to an unknown key', () => {
    const found = problems(`server:\n  colour: blue\nentra:\n  tenants: [${TENANT}]\n  audiences: [api://x]\n${RULES}`);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^server\.colour: unknown key — known keys here: .*\blisten\b.*\btls\b/);
  });

  it('says what a value must be instead of the schema library\'s wording', () => {
    const found = problems(`server:\n  shutdownGraceSeconds: ten\nentra:\n  tenants: []\n  audiences: [api://x]\n  tokenVersions: ["2.O"]\n${RULES}`);
    expect(found).toEqual([
      'server.shutdownGraceSeconds: must be a number, not a string',
      'entra.tenants: must list at least one item',
      'entra.tokenVersions[0]: must be one of "1.0", "2.0" — did you mean "2.0"?',
    ]);
    for (const p of found) expect(p).not.toMatch(/Too small|Invalid input|Invalid option|>=/);
  });

  it('keeps the messages the schema itself words', () => {
    expect(problems(`server:\n  listen: 0.0.0.0:99999\nentra:\n  tenants: [${TENANT}]\n  audiences: [api://x]\n${RULES}`)).toEqual([
      'server.listen: port must be at most 65535',
    ]);
  });

  it('never quotes the wrong value itself, which may be a secret', () => {
    const found = problems(`entra:\n  tenants: [${TENANT}]\n  audiences: [api://x]\n  tokenHeader: 12345678987654321\n${RULES}`);
    expect(found).toEqual(['entra.tokenHeader: must be a string, not a number']);
  });

  it('locates a YAML syntax error by line and column', () => {
    expect(problems(`entra:\n  tenants: [${TENANT}]\n  audiences: [api://x\n${RULES}`)[0]).toMatch(/^line \d+, column \d+: \S/);
    expect(problems(`entra:\n  tenants: [${TENANT}]\n  tenants: [${TENANT}]\n${RULES}`)).toEqual(['line 3, column 3: Map keys must be unique']);
  });
});

describe('did you mean', () => {
  it('finds the candidate one typo away, ignoring case, and nothing when all are far', () => {
    expect(closest('tenant', ['tenants', 'audiences'])).toBe('tenants');
    expect(closest('Audiences', ['tenants', 'audiences'])).toBe('audiences');
    expect(closest('tokenVresions', ['tokenVersions', 'tokenHeader'])).toBe('tokenVersions');
    expect(closest('colour', ['listen', 'tls'])).toBeUndefined();
  });
});
