import { describe, expect, it } from 'vitest';
import { checkTokenBinding } from '../../../src/authn/mtls/binding.js';
import { resolvePeer } from '../../../src/authn/mtls/peer.js';
import type { PeerIdentity } from '../../../src/authn/mtls/types.js';
import { CHECKOUT_SPIFFE, FRONT_PROXY_SPIFFE, envoyEncode } from '../../fixtures/certs.js';
import { checkRequest, getPki, settings } from './helpers.js';

async function peerWithCertificate(which: 'checkout' | 'dnsOnly' = 'checkout'): Promise<PeerIdentity> {
  const pki = await getPki();
  const r = resolvePeer(checkRequest({ certificate: envoyEncode(pki[which].certPem) }), settings(), Date.now());
  if (!r.ok || !r.peer) throw new Error('fixture');
  return r.peer;
}

const token = (thumbprint: string | undefined) => ({ boundCertificateThumbprint: thumbprint });

describe('certificate-bound tokens (RFC 8705)', () => {
  it('accepts a bound token presented with the matching certificate', async () => {
    const { checkout } = await getPki();
    expect(checkTokenBinding(token(checkout.thumbprint), await peerWithCertificate())).toEqual({ ok: true, bound: true });
  });

  it('refuses a bound token presented with a different certificate', async () => {
    const { checkout } = await getPki();
    expect(checkTokenBinding(token(checkout.thumbprint), await peerWithCertificate('dnsOnly'))).toMatchObject({
      ok: false,
      reason: 'token_binding_mismatch',
    });
  });

  it('refuses a bound token when no certificate is known, even if the rule does not ask for binding (never fails open)', async () => {
    const { checkout } = await getPki();
    expect(checkTokenBinding(token(checkout.thumbprint), undefined)).toMatchObject({ ok: false, reason: 'token_binding_no_certificate' });
    // A principal without Envoy's include_peer_certificate gives an identity but no thumbprint.
    const principalOnly = resolvePeer(checkRequest({ principal: CHECKOUT_SPIFFE }), settings(), Date.now());
    if (!principalOnly.ok) throw new Error('fixture');
    expect(checkTokenBinding(token(checkout.thumbprint), principalOnly.peer)).toMatchObject({
      ok: false,
      reason: 'token_binding_no_certificate',
    });
  });

  it('binds against the client certificate a trusted proxy forwarded in XFCC', async () => {
    const { checkout } = await getPki();
    const r = resolvePeer(
      checkRequest({ headers: { 'x-forwarded-client-cert': `By=${FRONT_PROXY_SPIFFE};Cert="${envoyEncode(checkout.certPem)}"` } }),
      settings({ xfcc: { trusted: true, proxies: [FRONT_PROXY_SPIFFE] } }),
      Date.now(),
    );
    if (!r.ok) throw new Error(r.detail);
    expect(checkTokenBinding(token(checkout.thumbprint), r.peer)).toEqual({ ok: true, bound: true });
  });

  it('refuses a thumbprint that differs only in case or padding', async () => {
    const { checkout } = await getPki();
    const peer = await peerWithCertificate();
    expect(checkTokenBinding(token(checkout.thumbprint.toUpperCase()), peer)).toMatchObject({ reason: 'token_binding_mismatch' });
    expect(checkTokenBinding(token(`${checkout.thumbprint}=`), peer)).toMatchObject({ reason: 'token_binding_mismatch' });
  });

  it('lets an unbound token through unless the rule or the MTLS_POP scheme demands binding', async () => {
    const peer = await peerWithCertificate();
    expect(checkTokenBinding(token(undefined), peer)).toEqual({ ok: true, bound: false });
    expect(checkTokenBinding(token(undefined), peer, { requireBound: true })).toMatchObject({ ok: false, reason: 'token_not_bound' });
    expect(checkTokenBinding(token(undefined), peer, { scheme: 'mtls_pop' })).toMatchObject({ ok: false, reason: 'token_not_bound' });
  });

  it('has nothing to bind when there is no token', () => {
    expect(checkTokenBinding(undefined, undefined, { requireBound: true })).toEqual({ ok: true, bound: false });
  });
});
