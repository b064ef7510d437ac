import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { configProblems } from '../fixtures/config-problems.js';

const TENANT = '11111111-1111-4111-8111-111111111111';
const HEAD = `entra:\n  tenants: [${TENANT}]\n  audiences: [api://orders]\n`;

/** The problems (path: message) of a config with these rules; [] when it loads. */
const problems = (rulesYaml: string, extra = ''): string[] => configProblems(`${HEAD}${extra}rules:\n${rulesYaml}`);

describe('rules are refused at load, each problem with its path', () => {
  it.each([
    ['unknown rule key', '  - name: a\n    mach: {}\n', 'rules[0].mach: unknown key — did you mean "match"?'],
    ['unknown match key', '  - name: a\n    match: { host: [a.com] }\n', 'rules[0].match.host: unknown key — did you mean "hosts"?'],
    ['unknown requirement key', '  - name: a\n    require: { role: { anyOf: [x] } }\n', 'rules[0].require.role: unknown key — did you mean "roles"?'],
    ['empty anyOf', '  - name: a\n    require: { roles: { anyOf: [] } }\n', 'rules[0].require.roles.anyOf: must list at least one item'],
    ['roles without anyOf/allOf', '  - name: a\n    require: { roles: {} }\n', 'rules[0].require.roles: give anyOf, allOf or both'],
    ['empty require.anyOf alternative', '  - name: a\n    require: { anyOf: [ {} ] }\n', 'rules[0].require.anyOf[0]: an alternative needs at least one requirement'],
    [
      'allowAnonymous with requirements',
      '  - name: a\n    allowAnonymous: true\n    require: { roles: { anyOf: [x] } }\n',
      'rules[0].require: allowAnonymous rules take no requirements',
    ],
    ['tokenType app with scopes', '  - name: a\n    require: { tokenType: app, scopes: { anyOf: [x] } }\n', 'rules[0].require.scopes: app-only tokens never carry scopes'],
    [
      'tokenType app with scopes in an alternative',
      '  - name: a\n    require: { tokenType: app, anyOf: [ { scopes: { anyOf: [x] } } ] }\n',
      'rules[0].require.anyOf[0].scopes: app-only tokens never carry scopes',
    ],
    [
      'conflicting token types',
      '  - name: a\n    require: { tokenType: app, anyOf: [ { tokenType: user, roles: { anyOf: [x] } } ] }\n',
      'rules[0].require.anyOf[0].tokenType: conflicts with tokenType "app"',
    ],
    [
      'peerOnly with token requirements',
      '  - name: a\n    require: { roles: { anyOf: [x] }, peer: { peerOnly: true, spiffeIds: [spiffe://td/x] } }\n',
      'rules[0].require.roles: reads the token, but peer.peerOnly means no token is needed',
    ],
    [
      'peerOnly alternative with token requirements',
      '  - name: a\n    require: { anyOf: [ { roles: { anyOf: [x] }, peer: { peerOnly: true, spiffeIds: [spiffe://td/x] } } ] }\n',
      'rules[0].require.anyOf[0].peer.peerOnly: a peerOnly alternative cannot also require token claims',
    ],
    [
      'token requirements beside a peerOnly alternative',
      '  - name: a\n    require: { tokenType: app, anyOf: [ { peer: { peerOnly: true, spiffeIds: [spiffe://td/x] } }, { roles: { anyOf: [x] } } ] }\n',
      'rules[0].require.tokenType: reads the token, but a peerOnly alternative means no token is needed',
    ],
    ['peerOnly without an identity list', '  - name: a\n    require: { peer: { peerOnly: true } }\n', 'rules[0].require.peer.peerOnly: peerOnly needs spiffeIds'],
    ['empty peer requirement', '  - name: a\n    require: { peer: {} }\n', 'rules[0].require.peer: give spiffeIds, spiffePatterns, dnsSans or requireBoundToken'],
    ['invalid SPIFFE id', '  - name: a\n    require: { peer: { spiffeIds: [https://x] } }\n', 'rules[0].require.peer.spiffeIds[0]: '],
    ['invalid app id', '  - name: a\n    require: { appIds: [not-a-guid] }\n', 'rules[0].require.appIds[0]: expected a GUID'],
    ['invalid token type', '  - name: a\n    require: { tokenType: robot }\n', 'rules[0].require.tokenType: must be one of "app", "user"'],
    ['scope with a space', '  - name: a\n    require: { scopes: { anyOf: ["a b"] } }\n', 'rules[0].require.scopes.anyOf[0]: a scope has no spaces'],
    ['invalid rule name', '  - name: "a b"\n', 'rules[0].name: use 1-128 letters'],
    ['host with a port', '  - name: a\n    match: { hosts: ["a.com:443"] }\n', 'rules[0].match.hosts[0]: expected a host name'],
    ['wildcard in the middle', '  - name: a\n    match: { hosts: ["a.*.com"] }\n', 'rules[0].match.hosts[0]: expected a host name'],
    ['bare wildcard', '  - name: a\n    match: { hosts: ["*"] }\n', 'rules[0].match.hosts[0]: expected a host name'],
    ['relative path', '  - name: a\n    match: { paths: [{ exact: healthz }] }\n', 'rules[0].match.paths[0].exact: must start with "/"'],
    ['path with query', '  - name: a\n    match: { paths: [{ prefix: "/a?b" }] }\n', 'rules[0].match.paths[0].prefix: must not contain a query'],
    ['non-canonical path', '  - name: a\n    match: { paths: [{ prefix: /a/../b }] }\n', 'rules[0].match.paths[0].prefix: must be a normalized path, but has a ".." segment'],
    ['path with an encoded letter', '  - name: a\n    match: { paths: [{ exact: /%41dmin }] }\n', 'rules[0].match.paths[0].exact: must be written normalized, as "/Admin"'],
    ['path with path parameters', '  - name: a\n    match: { paths: [{ exact: "/a;b" }] }\n', 'rules[0].match.paths[0].exact: must be a normalized path, but has a ";"'],
    ['two path kinds at once', '  - name: a\n    match: { paths: [{ exact: /a, prefix: /b }] }\n', 'rules[0].match.paths[0]: give exactly one of exact, prefix, grpc'],
    ['no path kind', '  - name: a\n    match: { paths: [{}] }\n', 'rules[0].match.paths[0]: give exactly one of exact, prefix, grpc'],
    ['bad gRPC name', '  - name: a\n    match: { paths: [{ grpc: "shop.v1.Orders/Get/x" }] }\n', 'rules[0].match.paths[0].grpc: expected package.Service'],
    ['bad method', '  - name: a\n    match: { methods: ["GET POST"] }\n', 'rules[0].match.methods[0]: expected an HTTP method'],
    ['empty methods list', '  - name: a\n    match: { methods: [] }\n', 'rules[0].match.methods: must list at least one item'],
    ['duplicate names', '  - name: a\n    match: { methods: [GET] }\n  - name: a\n', 'rules[1].name: duplicate rule name "a" (also rules[0])'],
    [
      'tenant outside entra.tenants',
      '  - name: a\n    require: { tenants: [22222222-2222-4222-8222-222222222222] }\n',
      'rules[0].require.tenants[0]: tenant 22222222-2222-4222-8222-222222222222 is not in entra.tenants',
    ],
    ['rule after a catch-all', '  - name: all\n  - name: b\n    match: { methods: [GET] }\n', 'rules[1]: rule "b" is unreachable: rules[0] "all"'],
    [
      'rule shadowed by a broader prefix',
      '  - name: api\n    match: { paths: [{ prefix: /api }] }\n  - name: admin\n    match: { paths: [{ exact: /api/admin }], methods: [GET] }\n',
      'rules[1]: rule "admin" is unreachable: rules[0] "api"',
    ],
    [
      'rule shadowed by a wildcard host',
      '  - name: any-sub\n    match: { hosts: ["*.example.com"] }\n  - name: one\n    match: { hosts: [a.example.com, "*.b.example.com"] }\n',
      'rules[1]: rule "one" is unreachable: rules[0] "any-sub"',
    ],
    [
      'rule shadowed by a gRPC service',
      '  - name: svc\n    match: { paths: [{ grpc: a.B }] }\n  - name: m\n    match: { paths: [{ grpc: a.B/C }, { exact: /a.B/D }] }\n',
      'rules[1]: rule "m" is unreachable: rules[0] "svc"',
    ],
    ['no rules', '  []\n', 'rules: must list at least one item'],
    ['dryRun not a boolean', '  - name: a\n', 'dryRun: must be true or false, not a string', 'dryRun: "yes please"\n'],
  ])('%s', (_name, rules, expected, extra = '') => {
    const found = problems(rules, extra);
    expect(found.some((p) => p.startsWith(expected)), `${expected}\nnot in:\n${found.join('\n')}`).toBe(true);
  });

  it('reports every problem at once', () => {
    const found = problems('  - name: a\n    match: { hosts: ["*"], methods: [] }\n    require: { roles: {}, tokenType: x }\n');
    expect(found).toHaveLength(4);
  });

  it.each([
    ['partial overlap: later rule also matches other methods', '  - name: a\n    match: { methods: [GET] }\n  - name: b\n'],
    ['different context extension values', '  - name: a\n    match: { contextExtensions: { r: x } }\n  - name: b\n    match: { contextExtensions: { r: y } }\n'],
    ['prefix does not cover a sibling', '  - name: a\n    match: { paths: [{ prefix: /api }] }\n  - name: b\n    match: { paths: [{ prefix: /apiv2 }] }\n'],
    ['wildcard does not cover the apex', '  - name: a\n    match: { hosts: ["*.example.com"] }\n  - name: b\n    match: { hosts: [example.com] }\n'],
  ])('accepts reachable rules: %s', (_name, rules) => {
    expect(problems(rules)).toEqual([]);
  });

  it('lower-cases GUIDs and keeps defaults', () => {
    const config = parseConfig(`${HEAD}rules:\n  - name: a\n    require: { appIds: [AAAAAAAA-0000-4000-8000-00000000000A] }\n`, 't', { env: {} });
    expect(config.rules[0]?.require?.appIds).toEqual(['aaaaaaaa-0000-4000-8000-00000000000a']);
    expect(config.rules[0]?.allowAnonymous).toBe(false);
    expect(config.dryRun).toBe(false);
    expect(config.response.dryRunHeader).toBeUndefined();
  });
});
