import { describe, expect, it } from 'vitest';
import type { TokenIdentity } from '../../src/core/identity.js';
import type { ReasonCode } from '../../src/core/reasons.js';
import { compilePolicy } from '../../src/policy/compile.js';
import { checkRequirements } from '../../src/policy/evaluate.js';
import type { PeerIdentity, PeerResult } from '../../src/policy/peer.js';
import { peerIdentity } from '../fixtures/peer.js';
import { APP_A, APP_B, TENANT, TENANT_2, configWithRules, identity } from './fixtures.js';

/** Checks `require` (YAML flow mapping) against an identity (and peer); returns the reason or 'ok'. */
function check(requireYaml: string, id: TokenIdentity | undefined, peer?: PeerIdentity | PeerResult): ReasonCode | 'ok' {
  const policy = compilePolicy(configWithRules(`  - name: r\n    require: ${requireYaml}\n`));
  const rule = policy.rules[0];
  if (!rule) throw new Error('no rule');
  const result: PeerResult = peer === undefined ? { ok: true, peer: undefined } : 'ok' in peer ? peer : { ok: true, peer };
  const outcome = checkRequirements(rule, { identity: id, peer: () => result });
  return outcome.ok ? 'ok' : outcome.reason;
}

const CHECKOUT = 'spiffe://cluster.local/ns/shop/sa/checkout';
const peerOf = (over: Partial<PeerIdentity> = {}): PeerIdentity => peerIdentity({ source: 'principal', spiffeId: CHECKOUT, ...over });


describe('requirements', () => {
  it.each<[string, string, Partial<TokenIdentity>, ReasonCode | 'ok']>([
    ['roles anyOf: one held', '{ roles: { anyOf: [A, B] } }', { roles: ['B'] }, 'ok'],
    ['roles anyOf: none held', '{ roles: { anyOf: [A, B] } }', { roles: ['C'] }, 'missing_role'],
    ['roles allOf: all held', '{ roles: { allOf: [A, B] } }', { roles: ['B', 'A', 'C'] }, 'ok'],
    ['roles allOf: one missing', '{ roles: { allOf: [A, B] } }', { roles: ['A'] }, 'missing_role'],
    ['roles are case-sensitive', '{ roles: { anyOf: [Orders.Read] } }', { roles: ['orders.read'] }, 'missing_role'],
    ['scopes anyOf', '{ scopes: { anyOf: [read] } }', { type: 'user', scopes: ['read', 'write'] }, 'ok'],
    ['scopes allOf missing', '{ scopes: { allOf: [read, write] } }', { type: 'user', scopes: ['read'] }, 'missing_scope'],
    ['calling app listed', `{ appIds: [${APP_B}, ${APP_A.toUpperCase()}] }`, { appId: APP_A }, 'ok'],
    ['calling app not listed', `{ appIds: [${APP_B}] }`, { appId: APP_A }, 'app_not_allowed'],
    ['tenant listed', `{ tenants: [${TENANT}] }`, { tid: TENANT }, 'ok'],
    ['tenant not listed', `{ tenants: [${TENANT}] }`, { tid: TENANT_2 }, 'tenant_denied_by_rule'],
    ['token type app', '{ tokenType: app }', { type: 'app' }, 'ok'],
    ['token type app, user token', '{ tokenType: app }', { type: 'user' }, 'token_type_not_allowed'],
    ['token type user, app token', '{ tokenType: user }', { type: 'app' }, 'token_type_not_allowed'],
    ['nothing required: any valid token', '{}', {}, 'ok'],
  ])('%s', (_name, yaml, over, expected) => {
    expect(check(yaml, identity(over))).toBe(expected);
  });

  it('reports the first failure in the fixed order, with every outcome for explain', () => {
    const policy = compilePolicy(configWithRules(`  - name: r\n    require: { tokenType: user, roles: { anyOf: [A] }, appIds: [${APP_B}] }\n`));
    const rule = policy.rules[0];
    if (!rule) throw new Error('no rule');
    const result = checkRequirements(rule, { identity: identity({ roles: ['X'] }), peer: () => ({ ok: true, peer: undefined }) });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe('token_type_not_allowed');
    expect(result.outcomes.map((o) => [o.requirement, o.met])).toEqual([
      ['token type user', false],
      [`calling app any of [${APP_B}]`, false],
      ['roles any of [A]', false],
    ]);
    expect(result.detail).toContain('roles any of [A]: has [X]');
  });

  describe('anyOf alternatives', () => {
    const yaml = '{ anyOf: [ { tokenType: app, roles: { anyOf: [Orders.Read] } }, { tokenType: user, scopes: { anyOf: [Orders.Read] } } ] }';
    it.each<[string, Partial<TokenIdentity>, ReasonCode | 'ok']>([
      ['app token with the role', { type: 'app', roles: ['Orders.Read'] }, 'ok'],
      ['user token with the scope', { type: 'user', scopes: ['Orders.Read'] }, 'ok'],
      ['user token with the role but no scope', { type: 'user', roles: ['Orders.Read'], scopes: ['other'] }, 'missing_scope'],
      ['app token without the role', { type: 'app', roles: [] }, 'missing_role'],
    ])('%s', (_name, over, expected) => {
      expect(check(yaml, identity(over))).toBe(expected);
    });

    it('are combined with the requirements beside them', () => {
      const both = `{ tenants: [${TENANT}], anyOf: [ { roles: { anyOf: [A] } }, { roles: { anyOf: [B] } } ] }`;
      expect(check(both, identity({ roles: ['B'] }))).toBe('ok');
      expect(check(both, identity({ roles: ['B'], tid: TENANT_2 }))).toBe('tenant_denied_by_rule');
    });
  });

  describe('peer', () => {
    it.each<[string, string, PeerIdentity | PeerResult | undefined, ReasonCode | 'ok']>([
      ['SPIFFE id listed', '{ peer: { peerOnly: true, spiffeIds: [spiffe://cluster.local/ns/shop/sa/checkout] } }', peerOf(), 'ok'],
      ['SPIFFE id not listed', '{ peer: { peerOnly: true, spiffeIds: [spiffe://cluster.local/ns/shop/sa/cart] } }', peerOf(), 'peer_not_allowed'],
      ['SPIFFE pattern', '{ peer: { peerOnly: true, spiffePatterns: ["spiffe://cluster.local/ns/shop/sa/*"] } }', peerOf(), 'ok'],
      [
        'SPIFFE pattern matches one segment only',
        '{ peer: { peerOnly: true, spiffePatterns: ["spiffe://cluster.local/ns/*"] } }',
        peerOf(),
        'peer_not_allowed',
      ],
      ['DNS SAN', '{ peer: { peerOnly: true, dnsSans: ["*.mesh.internal"] } }', peerOf({ spiffeId: undefined, uriSans: [], dnsSans: ['a.mesh.internal'] }), 'ok'],
      ['DNS wildcard is one label', '{ peer: { peerOnly: true, dnsSans: ["*.mesh.internal"] } }', peerOf({ spiffeId: undefined, uriSans: [], dnsSans: ['a.b.mesh.internal'] }), 'peer_not_allowed'],
      ['no client certificate', '{ peer: { peerOnly: true, spiffeIds: [spiffe://cluster.local/ns/shop/sa/checkout] } }', undefined, 'peer_missing'],
      [
        'an unreadable peer fails with the mTLS reason',
        '{ peer: { peerOnly: true, spiffeIds: [spiffe://cluster.local/ns/shop/sa/checkout] } }',
        { ok: false, reason: 'peer_certificate_malformed', detail: 'bad PEM' },
        'peer_certificate_malformed',
      ],
    ])('%s', (_name, yaml, peer, expected) => {
      expect(check(yaml, undefined, peer)).toBe(expected);
    });

    it('bound tokens need the certificate the token is bound to', () => {
      const yaml = '{ peer: { requireBoundToken: true } }';
      expect(check(yaml, identity({ boundCertificateThumbprint: 'abc' }), peerOf({ thumbprintS256: 'abc' }))).toBe('ok');
      expect(check(yaml, identity({ boundCertificateThumbprint: 'abc' }), peerOf({ thumbprintS256: 'xyz' }))).toBe('token_binding_mismatch');
      expect(check(yaml, identity({ boundCertificateThumbprint: 'abc' }), peerOf({ thumbprintS256: undefined }))).toBe('token_binding_no_certificate');
      expect(check(yaml, identity({ boundCertificateThumbprint: undefined }), peerOf({ thumbprintS256: 'abc' }))).toBe('token_not_bound');
    });
  });
});
