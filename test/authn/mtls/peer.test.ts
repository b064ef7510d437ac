import { describe, expect, it } from 'vitest';
import { createPeerResolver, peerMetadata, resolvePeer } from '../../../src/authn/mtls/peer.js';
import { compilePeerRequirement, checkPeerRequirement } from '../../../src/authn/mtls/requirements.js';
import { peerRequirementSchema } from '../../../src/config/schema-mtls.js';
import { CHECKOUT_DNS, CHECKOUT_SPIFFE, ENVOY_SPIFFE, FRONT_PROXY_SPIFFE, envoyEncode } from '../../fixtures/certs.js';
import { checkRequest, getPki, settings } from './helpers.js';

const NOW = () => Date.now();
const TRUST_FRONT_PROXY = { xfcc: { trusted: true, proxies: [FRONT_PROXY_SPIFFE] } };

describe('peer identity from Envoy attributes', () => {
  it('has no peer when Envoy sends neither principal nor certificate', () => {
    expect(resolvePeer(checkRequest(), settings(), NOW())).toEqual({ ok: true, peer: undefined });
  });

  it('takes a SPIFFE principal alone as the identity (Istio: no certificate forwarded)', () => {
    const r = resolvePeer(checkRequest({ principal: CHECKOUT_SPIFFE }), settings(), NOW());
    expect(r).toMatchObject({
      ok: true,
      peer: { source: 'principal', principal: CHECKOUT_SPIFFE, spiffeId: CHECKOUT_SPIFFE, uriSans: [CHECKOUT_SPIFFE], dnsSans: [] },
    });
    expect(r.ok && r.peer?.thumbprintS256).toBeUndefined();
  });

  it('classifies a DNS principal and a Subject principal by their form', () => {
    const dns = resolvePeer(checkRequest({ principal: 'billing.example.com' }), settings(), NOW());
    expect(dns).toMatchObject({ ok: true, peer: { dnsSans: ['billing.example.com'], uriSans: [], spiffeId: undefined } });
    const subj = resolvePeer(checkRequest({ principal: 'CN=Test Client,OU=Lyft' }), settings(), NOW());
    expect(subj).toMatchObject({ ok: true, peer: { subject: 'CN=Test Client,OU=Lyft', dnsSans: [], uriSans: [] } });
  });

  it('decodes the CheckRequest certificate and exposes SANs, fingerprint and thumbprint', async () => {
    const { checkout } = await getPki();
    const r = resolvePeer(checkRequest({ principal: CHECKOUT_SPIFFE, certificate: envoyEncode(checkout.certPem) }), settings(), NOW());
    expect(r).toMatchObject({
      ok: true,
      peer: {
        source: 'certificate',
        principal: CHECKOUT_SPIFFE,
        spiffeId: CHECKOUT_SPIFFE,
        uriSans: [CHECKOUT_SPIFFE],
        dnsSans: [CHECKOUT_DNS],
        fingerprintSha256: checkout.hashHex,
        thumbprintS256: checkout.thumbprint,
        caVerified: false,
      },
    });
  });

  it('denies when the principal disagrees with the certificate SAN', async () => {
    const { checkout } = await getPki();
    const r = resolvePeer(
      checkRequest({ principal: 'spiffe://cluster.local/ns/admin/sa/root', certificate: envoyEncode(checkout.certPem) }),
      settings(),
      NOW(),
    );
    expect(r).toMatchObject({ ok: false, reason: 'peer_identity_conflict' });
  });

  it('denies when the principal is a later SAN rather than the first URI SAN Envoy would pick', async () => {
    const { checkout } = await getPki();
    const r = resolvePeer(checkRequest({ principal: CHECKOUT_DNS, certificate: envoyEncode(checkout.certPem) }), settings(), NOW());
    expect(r).toMatchObject({ ok: false, reason: 'peer_identity_conflict' });
  });

  it('accepts a Subject principal that matches a certificate without SANs', async () => {
    const { subjectOnly } = await getPki();
    const r = resolvePeer(
      checkRequest({ principal: 'O=Example Corp,CN=legacy-client', certificate: envoyEncode(subjectOnly.certPem) }),
      settings(),
      NOW(),
    );
    expect(r).toMatchObject({ ok: true, peer: { principal: 'O=Example Corp,CN=legacy-client' } });
  });

  it('denies an expired or not-yet-valid peer certificate', async () => {
    const { expired, notYetValid } = await getPki();
    expect(resolvePeer(checkRequest({ certificate: envoyEncode(expired.certPem) }), settings(), NOW())).toMatchObject({
      ok: false,
      reason: 'peer_certificate_expired',
    });
    expect(resolvePeer(checkRequest({ certificate: envoyEncode(notYetValid.certPem) }), settings(), NOW())).toMatchObject({
      ok: false,
      reason: 'peer_certificate_not_yet_valid',
    });
  });

  it('denies a malformed certificate, broken encoding and a chain instead of failing or throwing', async () => {
    const { checkout, ca } = await getPki();
    for (const certificate of ['%E0%A4%A', 'not a pem', envoyEncode(checkout.certPem + ca.certPem), envoyEncode(checkout.keyPem)]) {
      expect(resolvePeer(checkRequest({ certificate }), settings(), NOW())).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
    }
  });

  it('treats a principal with control characters as a malformed request', () => {
    expect(resolvePeer(checkRequest({ principal: 'spiffe://a/b\r\nx: y' }), settings(), NOW())).toMatchObject({
      ok: false,
      reason: 'request_malformed',
    });
  });

  it('fails closed instead of throwing when the request object itself misbehaves', () => {
    const hostile = {
      get source(): never {
        throw new Error('boom');
      },
      headers: new Map<string, string[]>(),
    };
    expect(resolvePeer(hostile, settings(), NOW())).toMatchObject({ ok: false, reason: 'internal_error' });
  });
});

describe('x-forwarded-client-cert', () => {
  it('ignores a client-supplied XFCC when XFCC is not trusted, so the spoofed identity grants nothing', () => {
    const spoof = { 'x-forwarded-client-cert': `By=${FRONT_PROXY_SPIFFE};URI=spiffe://cluster.local/ns/admin/sa/root` };
    const withPrincipal = resolvePeer(checkRequest({ principal: CHECKOUT_SPIFFE, headers: spoof }), settings(), NOW());
    expect(withPrincipal).toMatchObject({ ok: true, peer: { source: 'principal', principal: CHECKOUT_SPIFFE } });

    const alone = resolvePeer(checkRequest({ headers: spoof }), settings(), NOW());
    expect(alone).toEqual({ ok: true, peer: undefined });
    const req = compilePeerRequirement(peerRequirementSchema.parse({ spiffeIds: ['spiffe://cluster.local/ns/admin/sa/root'] }));
    if (!req.ok || !alone.ok) throw new Error('fixture');
    expect(checkPeerRequirement(req.requirement, alone.peer)).toMatchObject({ ok: false, reason: 'peer_missing' });
  });

  it('uses the element a trusted front proxy added, with its certificate and matching hash', async () => {
    const { checkout, frontProxy } = await getPki();
    const xfcc = `By=${FRONT_PROXY_SPIFFE};Hash=${checkout.hashHex};Cert="${envoyEncode(checkout.certPem)}";Subject="O=shop,CN=checkout";URI=${CHECKOUT_SPIFFE};DNS=${CHECKOUT_DNS}`;
    const r = resolvePeer(
      checkRequest({ principal: FRONT_PROXY_SPIFFE, certificate: envoyEncode(frontProxy.certPem), headers: { 'x-forwarded-client-cert': xfcc } }),
      settings(TRUST_FRONT_PROXY),
      NOW(),
    );
    expect(r).toMatchObject({
      ok: true,
      peer: {
        source: 'xfcc',
        principal: CHECKOUT_SPIFFE,
        spiffeId: CHECKOUT_SPIFFE,
        thumbprintS256: checkout.thumbprint,
        forwardedBy: FRONT_PROXY_SPIFFE,
      },
    });
  });

  it('accepts the element Envoy itself set for its direct client (SANITIZE_SET): principal and URI agree', () => {
    const r = resolvePeer(
      checkRequest({ principal: CHECKOUT_SPIFFE, headers: { 'x-forwarded-client-cert': `By=${ENVOY_SPIFFE};URI=${CHECKOUT_SPIFFE}` } }),
      settings({ xfcc: { trusted: true, proxies: [ENVOY_SPIFFE] } }),
      NOW(),
    );
    expect(r).toMatchObject({ ok: true, peer: { source: 'xfcc', principal: CHECKOUT_SPIFFE, thumbprintS256: undefined } });
  });

  it('takes the thumbprint from Hash when no Cert is forwarded', async () => {
    const { checkout } = await getPki();
    const r = resolvePeer(
      checkRequest({ headers: { 'x-forwarded-client-cert': `By=${FRONT_PROXY_SPIFFE};Hash=${checkout.hashHex.toUpperCase()};URI=${CHECKOUT_SPIFFE}` } }),
      settings(TRUST_FRONT_PROXY),
      NOW(),
    );
    expect(r).toMatchObject({ ok: true, peer: { thumbprintS256: checkout.thumbprint, fingerprintSha256: checkout.hashHex } });
  });

  it('denies an element added by a proxy that is not configured (wrong By)', () => {
    const r = resolvePeer(
      checkRequest({ headers: { 'x-forwarded-client-cert': `By=spiffe://cluster.local/ns/evil/sa/proxy;URI=${CHECKOUT_SPIFFE}` } }),
      settings(TRUST_FRONT_PROXY),
      NOW(),
    );
    expect(r).toMatchObject({ ok: false, reason: 'xfcc_untrusted' });
  });

  it('denies a client that prepends a forged element: only the nearest element counts', () => {
    const forged = `By=${FRONT_PROXY_SPIFFE};URI=spiffe://cluster.local/ns/admin/sa/root,By=spiffe://cluster.local/ns/other/sa/proxy;URI=${CHECKOUT_SPIFFE}`;
    const r = resolvePeer(checkRequest({ headers: { 'x-forwarded-client-cert': forged } }), settings(TRUST_FRONT_PROXY), NOW());
    expect(r).toMatchObject({ ok: false, reason: 'xfcc_untrusted' });
  });

  it('denies when Hash does not match Cert', async () => {
    const { checkout, dnsOnly } = await getPki();
    const xfcc = `By=${FRONT_PROXY_SPIFFE};Hash=${dnsOnly.hashHex};Cert="${envoyEncode(checkout.certPem)}";URI=${CHECKOUT_SPIFFE}`;
    const r = resolvePeer(checkRequest({ headers: { 'x-forwarded-client-cert': xfcc } }), settings(TRUST_FRONT_PROXY), NOW());
    expect(r).toMatchObject({ ok: false, reason: 'xfcc_untrusted' });
  });

  it('denies a URI field that is not among the forwarded certificate SANs', async () => {
    const { checkout } = await getPki();
    const xfcc = `By=${FRONT_PROXY_SPIFFE};Cert="${envoyEncode(checkout.certPem)}";URI=spiffe://cluster.local/ns/admin/sa/root`;
    const r = resolvePeer(checkRequest({ headers: { 'x-forwarded-client-cert': xfcc } }), settings(TRUST_FRONT_PROXY), NOW());
    expect(r).toMatchObject({ ok: false, reason: 'peer_identity_conflict' });
  });

  it('denies when the direct peer is neither the forwarding proxy nor the forwarded client', () => {
    const r = resolvePeer(
      checkRequest({
        principal: 'spiffe://cluster.local/ns/shop/sa/intruder',
        headers: { 'x-forwarded-client-cert': `By=${FRONT_PROXY_SPIFFE};URI=${CHECKOUT_SPIFFE}` },
      }),
      settings(TRUST_FRONT_PROXY),
      NOW(),
    );
    expect(r).toMatchObject({ ok: false, reason: 'peer_identity_conflict' });
  });

  it('denies an expired forwarded certificate', async () => {
    const { expired } = await getPki();
    const xfcc = `By=${FRONT_PROXY_SPIFFE};Cert="${envoyEncode(expired.certPem)}"`;
    const r = resolvePeer(checkRequest({ headers: { 'x-forwarded-client-cert': xfcc } }), settings(TRUST_FRONT_PROXY), NOW());
    expect(r).toMatchObject({ ok: false, reason: 'peer_certificate_expired' });
  });

  it('denies garbage XFCC and elements that name no client', () => {
    for (const value of ['garbage', `By=${FRONT_PROXY_SPIFFE};Hash=nothex`, `By=${FRONT_PROXY_SPIFFE};Subject=""`, `By=${FRONT_PROXY_SPIFFE};URI=`]) {
      expect(resolvePeer(checkRequest({ headers: { 'x-forwarded-client-cert': value } }), settings(TRUST_FRONT_PROXY), NOW())).toMatchObject({
        ok: false,
        reason: 'xfcc_malformed',
      });
    }
  });

  it('falls back to the direct peer when a trusted-XFCC deployment sends no header', () => {
    const r = resolvePeer(checkRequest({ principal: CHECKOUT_SPIFFE }), settings(TRUST_FRONT_PROXY), NOW());
    expect(r).toMatchObject({ ok: true, peer: { source: 'principal' } });
  });
});

describe('CA bundle', () => {
  it('marks a certificate issued by the bundle as verified and denies one from another CA', async () => {
    const { ca, checkout, foreign } = await getPki();
    const s = settings({ caBundleFile: '/ca.pem' }, ca.certPem);
    expect(resolvePeer(checkRequest({ certificate: envoyEncode(checkout.certPem) }), s, NOW())).toMatchObject({
      ok: true,
      peer: { caVerified: true },
    });
    expect(resolvePeer(checkRequest({ certificate: envoyEncode(foreign.certPem) }), s, NOW())).toMatchObject({
      ok: false,
      reason: 'peer_certificate_untrusted',
    });
  });

  it('denies an identity with no certificate to verify once a bundle is configured', async () => {
    const { ca } = await getPki();
    const s = settings({ caBundleFile: '/ca.pem' }, ca.certPem);
    expect(resolvePeer(checkRequest({ principal: CHECKOUT_SPIFFE }), s, NOW())).toMatchObject({ ok: false, reason: 'peer_certificate_untrusted' });
  });
});

describe('cached resolver', () => {
  it('returns the same identity as the pure resolver and still checks validity on every call', async () => {
    const { ca, checkout } = await getPki();
    const s = settings({ caBundleFile: '/ca.pem' }, ca.certPem);
    const resolver = createPeerResolver(s, { cacheSize: 2 });
    const request = checkRequest({ principal: CHECKOUT_SPIFFE, certificate: envoyEncode(checkout.certPem) });
    const first = resolver.resolve(request, NOW());
    expect(first).toEqual(resolvePeer(request, s, NOW()));
    expect(resolver.resolve(request, NOW())).toEqual(first);
    expect(resolver.resolve(request, checkout.cert.notAfter.getTime() + 1000)).toMatchObject({ reason: 'peer_certificate_expired' });
  });

  it('stays bounded and correct when more distinct certificates than its size pass through', async () => {
    const { checkout, dnsOnly, subjectOnly } = await getPki();
    const resolver = createPeerResolver(settings(), { cacheSize: 1 });
    for (const m of [checkout, dnsOnly, subjectOnly, checkout]) {
      const r = resolver.resolve(checkRequest({ certificate: envoyEncode(m.certPem) }), NOW());
      expect(r.ok && r.peer?.thumbprintS256).toBe(m.thumbprint);
    }
  });
});

describe('peer metadata', () => {
  it('describes the peer with flat, stable keys for dynamic metadata and audit', async () => {
    const { checkout } = await getPki();
    const r = resolvePeer(checkRequest({ certificate: envoyEncode(checkout.certPem) }), settings(), NOW());
    if (!r.ok || !r.peer) throw new Error('fixture');
    expect(peerMetadata(r.peer)).toEqual({
      peer_source: 'certificate',
      peer_principal: CHECKOUT_SPIFFE,
      peer_spiffe_id: CHECKOUT_SPIFFE,
      peer_fingerprint_sha256: checkout.hashHex,
    });
  });
});
