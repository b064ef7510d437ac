import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/core/decision.js';
import { FOREIGN_IDENTITY_HEADERS, headerStripping, planResponse, type ResponseSettings } from '../../src/core/response.js';
import { tokenIdentity } from '../fixtures/identity.js';
import { RESPONSE_SETTINGS } from '../fixtures/response-settings.js';

const settings = RESPONSE_SETTINGS;

const identity = tokenIdentity({ oid: 'oid-1', tid: 'tid-1', appId: 'app-1' });

const allow: Decision = { kind: 'allow', id: 'd-1', reason: 'allowed', rule: 'orders', identity, detail: '' };

describe('planResponse', () => {
  it('sets identity headers on an allow and removes client-sent copies of those left empty', () => {
    const plan = planResponse(allow, settings);
    expect(plan.kind).toBe('allow');
    if (plan.kind !== 'allow') return;
    expect(Object.fromEntries(plan.setHeaders)).toEqual({
      'x-entra-decision-id': 'd-1',
      'x-entra-oid': 'oid-1',
      'x-entra-tid': 'tid-1',
      'x-entra-app-id': 'app-1',
      'x-entra-token-type': 'app',
      'x-entra-roles': 'Orders.Read,Orders.Write',
    });
    // An app token has no scopes and there is no mTLS peer: those headers are removed so a client
    // cannot inject them.
    expect(plan.removeHeaders).toEqual(['x-entra-scopes', 'x-entra-peer-principal', 'x-entra-peer-fingerprint']);
    expect(plan.metadata).toMatchObject({ decision_id: 'd-1', rule: 'orders', oid: 'oid-1', app_id: 'app-1' });
  });

  it('adds the mTLS peer principal and fingerprint as headers and metadata', () => {
    const peer = { principal: 'spiffe://cluster.local/ns/shop/sa/checkout', fingerprintSha256: 'ab12', metadata: { peer_principal: 'spiffe://cluster.local/ns/shop/sa/checkout' } };
    const plan = planResponse(allow, settings, peer);
    if (plan.kind !== 'allow') throw new Error('expected allow');
    expect(Object.fromEntries(plan.setHeaders)).toMatchObject({
      'x-entra-peer-principal': 'spiffe://cluster.local/ns/shop/sa/checkout',
      'x-entra-peer-fingerprint': 'ab12',
    });
    expect(plan.metadata['peer_principal']).toBe('spiffe://cluster.local/ns/shop/sa/checkout');
  });

  describe('strips identity headers of other systems on every allow', () => {
    const stripping = { ...settings, stripHeaders: headerStripping({ wellKnown: true, names: ['x-legacy-user'], prefixes: ['x-corp-id-'] }) };
    const clientSent = [
      'x-ms-client-principal',
      'x-ms-client-principal-id',
      'x-ms-client-principal-name',
      'x-ms-client-principal-idp',
      'x-ms-token-aad-access-token',
      'x-auth-request-user',
      'x-auth-request-email',
      'x-pomerium-jwt-assertion',
      'x-auth-user',
      'x-user-id',
      'x-corp-id-roles',
    ];
    const requestHeaders = [':path', 'host', 'accept', 'authorization', 'x-request-id', ...clientSent];
    const removed = (decision: Decision, s: ResponseSettings = stripping): readonly string[] => {
      const plan = planResponse(decision, s, undefined, requestHeaders);
      if (plan.kind !== 'allow') throw new Error('expected allow');
      return plan.removeHeaders;
    };
    const anonymous: Decision = { kind: 'allow', id: 'd-9', reason: 'allowed_anonymous', rule: 'public', identity: undefined, detail: '' };

    it('removes every present header under a well-known or configured prefix, on token and anonymous allows', () => {
      for (const decision of [allow, anonymous]) expect(removed(decision)).toEqual(expect.arrayContaining(clientSent));
    });

    it('removes well-known and configured exact names even when Envoy did not send them to the server', () => {
      expect(removed(allow)).toEqual(expect.arrayContaining(['x-forwarded-user', 'x-forwarded-email', 'x-forwarded-groups', 'x-forwarded-preferred-username', 'x-forwarded-access-token', 'x-legacy-user']));
    });

    it('keeps ordinary headers, the token header and the headers it sets itself', () => {
      const s = { ...stripping, tokenHeader: 'x-auth-token', identityHeaders: { ...settings.identityHeaders, oid: 'x-user-oid' } };
      const plan = planResponse(allow, s, undefined, [...requestHeaders, 'x-auth-token', 'x-user-oid']);
      if (plan.kind !== 'allow') throw new Error('expected allow');
      for (const kept of [':path', 'host', 'accept', 'x-request-id', 'x-auth-token', 'x-user-oid']) expect(plan.removeHeaders).not.toContain(kept);
      expect(plan.setHeaders).toContainEqual(['x-user-oid', 'oid-1']);
    });

    it('strips only the configured headers when the well-known list is turned off', () => {
      const own = { ...settings, stripHeaders: headerStripping({ wellKnown: false, names: [], prefixes: ['x-corp-id-'] }) };
      const list = removed(allow, own);
      expect(list).toContain('x-corp-id-roles');
      expect(list).not.toContain('x-ms-client-principal');
    });

    it('covers App Service, oauth2-proxy, Pomerium and the generic X-Auth-/X-User- conventions by default', () => {
      expect(FOREIGN_IDENTITY_HEADERS.prefixes).toEqual(expect.arrayContaining(['x-ms-client-principal', 'x-ms-token-aad-', 'x-auth-', 'x-user-', 'x-pomerium-']));
    });
  });

  it('removes the token header after verification when configured', () => {
    const plan = planResponse(allow, { ...settings, removeTokenHeader: true });
    expect(plan.kind === 'allow' && plan.removeHeaders).toContain('authorization');
  });

  it('answers a missing token with 401 and a bare Bearer challenge naming the authority', () => {
    const plan = planResponse({ kind: 'deny', id: 'd-2', reason: 'token_missing', rule: undefined, identity: undefined, detail: 'x' }, settings);
    expect(plan).toMatchObject({ kind: 'deny', httpStatus: 401, grpcCode: 16 });
    if (plan.kind !== 'deny') return;
    const headers = Object.fromEntries(plan.headers);
    expect(headers['www-authenticate']).toBe(
      'Bearer realm="orders-api", authorization_uri="https://login.microsoftonline.com/tenant/oauth2/authorize"',
    );
    expect(JSON.parse(plan.body)).toEqual({ error: 'token_missing', message: 'an access token is required', decision_id: 'd-2' });
  });

  it('answers an expired token with 401 invalid_token and never the internal detail', () => {
    const plan = planResponse(
      { kind: 'deny', id: 'd-3', reason: 'token_expired', rule: undefined, identity: undefined, detail: 'exp 123 secret-ish detail' },
      settings,
    );
    if (plan.kind !== 'deny') throw new Error('expected deny');
    expect(Object.fromEntries(plan.headers)['www-authenticate']).toContain('error="invalid_token"');
    expect(plan.body).not.toContain('secret-ish');
  });

  it('answers a missing role with 403 insufficient_scope', () => {
    const plan = planResponse({ kind: 'deny', id: 'd-4', reason: 'missing_role', rule: 'r', identity, detail: '' }, settings);
    expect(plan).toMatchObject({ kind: 'deny', httpStatus: 403, grpcCode: 7 });
    if (plan.kind !== 'deny') return;
    expect(Object.fromEntries(plan.headers)['www-authenticate']).toContain('error="insufficient_scope"');
  });

  it('turns unreachable signing keys into an RPC failure, not a deny', () => {
    const plan = planResponse({ kind: 'unavailable', id: 'd-5', reason: 'keys_unavailable', rule: undefined, identity: undefined, detail: '' }, settings);
    expect(plan.kind).toBe('unavailable');
  });
});

describe('plan names (sameAs)', () => {
  const named: ResponseSettings = { ...settings, stripHeaders: headerStripping({ wellKnown: true, names: [], prefixes: [] }), planScope: 'configuration-1' };
  const first: Decision = { ...allow, id: '0f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910' };
  const peer = { principal: 'spiffe://a', fingerprintSha256: 'fp-a', metadata: { peer_principal: 'spiffe://a' } };
  /** The plan without its decision id, to compare two plans as the name promises. */
  const withoutId = (decision: Decision, s = named, p: typeof peer | undefined = undefined, headers: string[] = []): unknown =>
    JSON.parse(JSON.stringify(planResponse(decision, s, p, headers)).replaceAll(decision.id, '<id>'));
  const nameOf = (decision: Decision, s = named, p: typeof peer | undefined = undefined, headers: string[] = []): string | undefined => {
    const plan = planResponse(decision, s, p, headers);
    return plan.kind === 'unavailable' ? undefined : plan.sameAs;
  };

  it('are given only where the settings carry a scope', () => {
    expect(nameOf(first, settings)).toBeUndefined();
    expect(nameOf(first)).toEqual(expect.any(String));
  });

  it('are equal for decisions that differ only in their id, and so are the plans apart from the id', () => {
    const again: Decision = { ...first, id: '9a8b7c6d-5e4f-4321-8fed-cba987654321', detail: 'another detail' };
    expect(nameOf(again)).toBe(nameOf(first));
    expect(withoutId(again)).toEqual(withoutId(first));
  });

  it('differ whenever anything but the id would change the answer', () => {
    const otherCaller = tokenIdentity({ oid: 'oid-2', tid: 'tid-1', appId: 'app-1', tokenHash: 'another-token' });
    const variants: [string, string | undefined][] = [
      ['another caller', nameOf({ ...first, identity: otherCaller })],
      ['no caller', nameOf({ ...first, identity: undefined })],
      ['another rule', nameOf({ ...first, rule: 'admin' })],
      ['another reason', nameOf({ ...first, reason: 'allowed_anonymous' })],
      ['a dry-run allow', nameOf({ ...first, dryRun: { wouldDeny: 'missing_role', detail: '' } })],
      ['a deny', nameOf({ ...first, kind: 'deny', reason: 'missing_role' })],
      ['a step-up deny', nameOf({ ...first, kind: 'deny', reason: 'missing_role', claimsChallenge: '{"access_token":{}}' })],
      ['a peer', nameOf(first, named, peer)],
      ['another peer', nameOf(first, named, { ...peer, principal: 'spiffe://b', metadata: { peer_principal: 'spiffe://b' } })],
      ['a stripped request header', nameOf(first, named, undefined, ['x-auth-user'])],
      ['another configuration', nameOf(first, { ...named, planScope: 'configuration-2' })],
    ];
    const names = new Set([nameOf(first), ...variants.map(([, name]) => name)]);
    expect(names.size).toBe(variants.length + 1);
  });
});
