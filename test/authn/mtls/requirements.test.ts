import { describe, expect, it } from 'vitest';
import { checkPeerRequirement, compilePeerRequirement, type CompiledPeerRequirement } from '../../../src/authn/mtls/requirements.js';
import { compileDnsPattern, compileIdentityPattern, compileSpiffePattern, parseSpiffeId } from '../../../src/authn/mtls/spiffe.js';
import { peerRequirementSchema, type PeerRequirementInput } from '../../../src/config/schema-mtls.js';
import { peerIdentity } from '../../fixtures/peer.js';

function requirement(input: PeerRequirementInput): CompiledPeerRequirement {
  const compiled = compilePeerRequirement(peerRequirementSchema.parse(input));
  if (!compiled.ok) throw new Error(compiled.problems.join('; '));
  return compiled.requirement;
}

const peer = peerIdentity;

const issues = (input: unknown): string[] => {
  const r = peerRequirementSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => i.message);
};

describe('peer requirements', () => {
  it('accepts an exact SPIFFE ID and refuses any other', () => {
    const req = requirement({ spiffeIds: ['spiffe://cluster.local/ns/shop/sa/checkout'] });
    expect(checkPeerRequirement(req, peer({ spiffeId: 'spiffe://cluster.local/ns/shop/sa/checkout' }))).toEqual({ ok: true });
    expect(checkPeerRequirement(req, peer({ spiffeId: 'spiffe://cluster.local/ns/shop/sa/checkout2' }))).toMatchObject({
      ok: false,
      reason: 'peer_not_allowed',
    });
  });

  it('matches trust domain + path patterns segment by segment', () => {
    const req = requirement({ spiffePatterns: ['spiffe://cluster.local/ns/shop/sa/*'] });
    const ok = (id: string) => checkPeerRequirement(req, peer({ spiffeId: id })).ok;
    expect(ok('spiffe://cluster.local/ns/shop/sa/checkout')).toBe(true);
    expect(ok('spiffe://cluster.local/ns/shop/sa/cart')).toBe(true);
    expect(ok('spiffe://cluster.local/ns/shop/sa/checkout/extra')).toBe(false);
    expect(ok('spiffe://cluster.local/ns/shop/sa')).toBe(false);
    expect(ok('spiffe://cluster.local/ns/shopping/sa/checkout')).toBe(false);
    expect(ok('spiffe://evil.local/ns/shop/sa/checkout')).toBe(false);
    expect(ok('spiffe://cluster.local.evil/ns/shop/sa/checkout')).toBe(false);
  });

  it('lets a trailing ** match one or more segments, never zero', () => {
    const match = compileSpiffePattern('spiffe://cluster.local/ns/shop/**');
    if (!match.ok) throw new Error(match.problem);
    const m = (id: string) => match.value(parseSpiffeId(id) ?? { trustDomain: '', segments: [] });
    expect(m('spiffe://cluster.local/ns/shop/sa/checkout')).toBe(true);
    expect(m('spiffe://cluster.local/ns/shop/x')).toBe(true);
    expect(m('spiffe://cluster.local/ns/shop')).toBe(false);
  });

  it('matches DNS SANs exactly (case-insensitive) or by a one-label wildcard', () => {
    const req = requirement({ dnsSans: ['Billing.Example.com', '*.svc.example.com'] });
    const ok = (...dnsSans: string[]) => checkPeerRequirement(req, peer({ dnsSans })).ok;
    expect(ok('billing.example.com')).toBe(true);
    expect(ok('other.example.com', 'BILLING.example.com')).toBe(true);
    expect(ok('cart.svc.example.com')).toBe(true);
    expect(ok('a.cart.svc.example.com')).toBe(false);
    expect(ok('svc.example.com')).toBe(false);
    expect(ok('*.svc.example.com')).toBe(false);
  });

  it('refuses a missing peer with peer_missing and a peer without a SPIFFE ID with peer_not_allowed', () => {
    const req = requirement({ spiffePatterns: ['spiffe://cluster.local/**'] });
    expect(checkPeerRequirement(req, undefined)).toMatchObject({ ok: false, reason: 'peer_missing' });
    expect(checkPeerRequirement(req, peer({ dnsSans: ['x.example.com'] }))).toMatchObject({ ok: false, reason: 'peer_not_allowed' });
  });

  it('never matches a certificate carrying two SPIFFE IDs', () => {
    const req = requirement({ spiffePatterns: ['spiffe://cluster.local/**'] });
    // peer.ts leaves spiffeId undefined in that case; the requirement then has nothing to match.
    expect(checkPeerRequirement(req, peer({ uriSans: ['spiffe://cluster.local/a', 'spiffe://cluster.local/b'] }))).toMatchObject({ ok: false });
  });

  it('is satisfied by any peer or none when it only demands bound tokens', () => {
    const req = requirement({ requireBoundToken: true });
    expect(req.requireBoundToken).toBe(true);
    expect(checkPeerRequirement(req, undefined)).toEqual({ ok: true });
  });

  it('can ask for the peer alone (no token)', () => {
    const req = requirement({ peerOnly: true, spiffeIds: ['spiffe://cluster.local/ns/batch/sa/job'] });
    expect(req.peerOnly).toBe(true);
    expect(checkPeerRequirement(req, peer({ spiffeId: 'spiffe://cluster.local/ns/batch/sa/job' }))).toEqual({ ok: true });
  });
});

describe('requirement configuration is validated at load', () => {
  it.each([
    ['a wildcard trust domain', { spiffePatterns: ['spiffe://*/ns/shop/sa/x'] }],
    ['a partial-segment wildcard', { spiffePatterns: ['spiffe://cluster.local/ns/shop/sa/check*'] }],
    ['** before the last segment', { spiffePatterns: ['spiffe://cluster.local/**/sa/x'] }],
    ['an empty segment', { spiffePatterns: ['spiffe://cluster.local/ns//sa'] }],
    ['a dot-dot segment', { spiffeIds: ['spiffe://cluster.local/ns/../sa'] }],
    ['a trailing slash', { spiffeIds: ['spiffe://cluster.local/ns/'] }],
    ['an upper-case scheme', { spiffeIds: ['SPIFFE://cluster.local/ns/a'] }],
    ['a port in the trust domain', { spiffeIds: ['spiffe://cluster.local:443/ns/a'] }],
    ['a wildcard in an exact ID', { spiffeIds: ['spiffe://cluster.local/ns/*'] }],
    ['a query string', { spiffeIds: ['spiffe://cluster.local/ns/a?x=1'] }],
    ['a bare TLD wildcard', { dnsSans: ['*.com'] }],
    ['a mid-name wildcard', { dnsSans: ['api.*.example.com'] }],
    ['an invalid DNS name', { dnsSans: ['bad_name-.example.com!'] }],
    ['peerOnly without identities', { peerOnly: true }],
    ['peerOnly with bound tokens', { peerOnly: true, requireBoundToken: true, spiffeIds: ['spiffe://a/b'] }],
    ['an empty requirement', {}],
    ['an unknown key', { spiffeIds: ['spiffe://a/b'], spifeIds: ['x'] }],
  ])('refuses %s', (_name, input) => {
    expect(issues(input).length).toBeGreaterThan(0);
  });

  it('compiles identity allow-list entries of every kind', () => {
    for (const entry of ['spiffe://cluster.local/ns/mesh/sa/envoy', 'spiffe://cluster.local/ns/mesh/**', 'https://envoy.example.com/id', 'envoy.example.com', '*.example.com']) {
      expect(compileIdentityPattern(entry).ok).toBe(true);
    }
    expect(compileIdentityPattern('spiffe://cluster.local/ns/mesh/sa/env*').ok).toBe(false);
    expect(compileDnsPattern('*').ok).toBe(false);
  });
});
