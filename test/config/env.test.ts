import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { substituteEnv, substituteString } from '../../src/config/env.js';

describe('environment substitution', () => {
  const env = { TENANT: '11111111-1111-4111-8111-111111111111', EMPTY: '', HOST: 'api.example.com' };

  it.each([
    ['plain', 'plain'],
    ['${HOST}', 'api.example.com'],
    ['https://${HOST}/x', 'https://api.example.com/x'],
    ['${MISSING:-fallback}', 'fallback'],
    ['${EMPTY:-fallback}', 'fallback'],
    ['${HOST:-fallback}', 'api.example.com'],
    ['${MISSING:-}', ''],
    ['${MISSING:-a:b-c}', 'a:b-c'],
    ['$${HOST}', '${HOST}'],
    ['cost: $5', 'cost: $5'],
    ['${HOST}${HOST}', 'api.example.comapi.example.com'],
  ])('%s → %s', (input, expected) => {
    expect(substituteString(input, env)).toEqual({ ok: true, value: expected });
  });

  it.each([
    ['${MISSING}', 'environment variable MISSING is not set'],
    ['${HOST', 'unterminated'],
    ['${1BAD}', 'invalid variable name'],
    ['${}', 'invalid variable name'],
  ])('%s is a problem', (input, message) => {
    const r = substituteString(input, env);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(message);
  });

  it('never substitutes keys, and never turns a value into structure', () => {
    const { value, problems } = substituteEnv({ '${HOST}': ['${INJECT}'] }, { INJECT: '{a: 1}\nb: [2]' });
    expect(problems).toEqual([]);
    expect(value).toEqual({ '${HOST}': ['{a: 1}\nb: [2]'] });
  });

  it('keeps a __proto__ key a plain key', () => {
    const input = JSON.parse('{"__proto__": {"polluted": "${X:-yes}"}}') as unknown;
    const { value } = substituteEnv(input, {});
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value as object)).toEqual(['__proto__']);
  });

  it('reports every unset variable with its path, together with the other problems of the file', () => {
    const text = `
entra:
  tenants: ["\${TENANT_ID}"]
  audiences: ["\${API_ID}", api://x]
rules:
  - name: a
    match: { hosts: ["\${PUBLIC_HOST:-api.example.com}"] }
    require: { roles: {} }
`;
    try {
      parseConfig(text, 'c.yaml', { env: {} });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => `${p.path}: ${p.message.split(' (')[0]}`)).toEqual([
        'entra.tenants[0]: environment variable TENANT_ID is not set',
        'entra.audiences[0]: environment variable API_ID is not set',
        'rules[0].require.roles: give anyOf, allOf or both',
      ]);
    }
  });

  it('substitutes before validation', () => {
    const config = parseConfig(
      'entra:\n  tenants: ["${TENANT}"]\n  audiences: ["api://${HOST}"]\nrules:\n  - name: a\n    match: { hosts: ["${HOST}"] }\n',
      'c.yaml',
      { env },
    );
    expect(config.entra.tenants).toEqual([env.TENANT]);
    expect(config.entra.audiences).toEqual(['api://api.example.com']);
    expect(config.rules[0]?.match.hosts).toEqual(['api.example.com']);
  });
});
