import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { compilePolicy } from '../../src/policy/compile.js';
import { configProblems } from '../fixtures/config-problems.js';

const TENANT = '11111111-1111-4111-8111-111111111111';
const GROUP = '0f8e2d1c-0000-4000-8000-00000000aaaa';

/** A config with one rule requiring `requireYaml`. */
const withRequirement = (requireYaml: string): string =>
  `entra:\n  tenants: [${TENANT}]\n  audiences: [api://orders]\nrules:\n  - name: r\n    require: ${requireYaml}\n`;
const load = (requireYaml: string) => parseConfig(withRequirement(requireYaml), 't.yaml', { env: {} });
const problems = (requireYaml: string): string[] => configProblems(withRequirement(requireYaml));

describe('group, directory role, client authentication, MFA and authentication context requirements in config', () => {
  it('accepts group ids bare or with a label, and shows the label in the requirement', () => {
    const config = load(`{ groups: { anyOf: [{ id: ${GROUP.toUpperCase()}, label: Payments admins }, ${TENANT}] } }`);
    const rule = compilePolicy(config).rules[0]!;
    expect(rule.requirement.groups?.anyLabel).toBe(`groups any of [Payments admins (${GROUP}), ${TENANT}]`);
  });

  it.each([
    ['a group that is not a GUID', '{ groups: { anyOf: [Payments] } }', 'rules[0].require.groups.anyOf[0]'],
    ['groups without anyOf/allOf', '{ groups: {} }', 'rules[0].require.groups: give anyOf, allOf or both'],
    ['an unknown client authentication', '{ clientAuthentication: mtls }', 'rules[0].require.clientAuthentication'],
    ['mfa: false', '{ mfa: false }', 'rules[0].require.mfa'],
    ['an authentication context outside c1..c99', '{ authenticationContext: c100 }', 'rules[0].require.authenticationContext: expected an authentication context id c1 … c99'],
    ['MFA for app-only tokens', '{ tokenType: app, mfa: true }', 'rules[0].require.mfa: app-only tokens never carry mfa'],
    [
      'an authentication context in an app-only alternative',
      '{ anyOf: [{ tokenType: app, authenticationContext: c1 }] }',
      'rules[0].require.anyOf[0].authenticationContext: app-only tokens never carry authenticationContext',
    ],
    ['token claims beside peerOnly', '{ peer: { peerOnly: true, spiffeIds: ["spiffe://a/b"] }, groups: { anyOf: [' + GROUP + '] } }', 'rules[0].require.groups: reads the token'],
  ])('refuses %s at load', (_name, yaml, expected) => {
    expect(problems(yaml).join('\n')).toContain(expected);
  });
});
