import { describe, expect, it } from 'vitest';
import {
  checkValidity,
  decodeEnvoyPem,
  envoyPrincipal,
  parseCertificateDer,
  parseCertificatePem,
  parseEnvoyCertificate,
  parseTrustAnchors,
  thumbprintFromHex,
  verifyAgainstAnchors,
} from '../../../src/authn/mtls/certificate.js';
import { CHECKOUT_DNS, CHECKOUT_SPIFFE, createLeaf, envoyEncode } from '../../fixtures/certs.js';
import { getPki } from './helpers.js';

describe('Envoy-encoded peer certificates', () => {
  it('decodes the URL-encoded PEM Envoy sends and reads SANs, subject, fingerprint and validity', async () => {
    const { checkout } = await getPki();
    const encoded = envoyEncode(checkout.certPem);
    expect(encoded).not.toMatch(/[\n +/=]/);
    const r = parseEnvoyCertificate(encoded);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.certificate.uriSans).toEqual([CHECKOUT_SPIFFE]);
    expect(r.certificate.dnsSans).toEqual([CHECKOUT_DNS]);
    expect(r.certificate.subject).toBe('O=shop,CN=checkout');
    expect(r.certificate.fingerprintSha256).toBe(checkout.hashHex);
    expect(r.certificate.thumbprintS256).toBe(checkout.thumbprint);
    expect(r.certificate.notBeforeMs).toBe(checkout.cert.notBefore.getTime());
    expect(r.certificate.notAfterMs).toBe(checkout.cert.notAfter.getTime());
    expect(envoyPrincipal(r.certificate)).toBe(CHECKOUT_SPIFFE);
  });

  it('accepts lower-case percent escapes and a PEM that was not encoded at all', async () => {
    const { checkout } = await getPki();
    const lower = envoyEncode(checkout.certPem).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
    expect(parseEnvoyCertificate(lower).ok).toBe(true);
    expect(parseEnvoyCertificate(checkout.certPem).ok).toBe(true);
  });

  it('derives the principal as Envoy does: first URI SAN, else first DNS SAN, else Subject', async () => {
    const { dnsOnly, subjectOnly } = await getPki();
    const dns = parseCertificatePem(dnsOnly.certPem);
    const subj = parseCertificatePem(subjectOnly.certPem);
    expect(dns.ok && envoyPrincipal(dns.certificate)).toBe('billing.example.com');
    expect(subj.ok && envoyPrincipal(subj.certificate)).toBe('O=Example Corp,CN=legacy-client');
  });

  it('refuses broken URL encoding', () => {
    const r = parseEnvoyCertificate('-----BEGIN%20CERTIFICATE-----%0AMII%ZZ');
    expect(r).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
  });

  it('refuses a PEM that is not a certificate', async () => {
    const { checkout } = await getPki();
    for (const input of [
      '',
      'hello',
      '-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n',
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      checkout.keyPem,
      checkout.certPem.replace('-----END CERTIFICATE-----', ''),
      'junk before\n' + checkout.certPem,
      checkout.certPem.slice(0, 100) + checkout.certPem.slice(108),
    ]) {
      expect(parseEnvoyCertificate(envoyEncode(input))).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
    }
  });

  it('refuses a whole chain where a leaf is expected', async () => {
    const { checkout, ca } = await getPki();
    const r = parseEnvoyCertificate(envoyEncode(checkout.certPem + ca.certPem));
    expect(r).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
    expect(!r.ok && r.detail).toMatch(/chain of 2/);
  });

  it('refuses DER with trailing bytes after the certificate', async () => {
    const { checkout } = await getPki();
    const r = parseCertificateDer(Buffer.concat([checkout.der, Buffer.from([0x00, 0x00])]));
    expect(r).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
  });

  it('refuses an oversized encoded certificate before decoding it', () => {
    expect(decodeEnvoyPem('%41'.repeat(30_000))).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
  });

  it('refuses a certificate with a huge SAN list, or a SAN longer than the cap', async () => {
    const { ca } = await getPki();
    const many = await createLeaf(ca, { dns: Array.from({ length: 100 }, (_, i) => `host-${i}.example.com`) });
    const r = parseEnvoyCertificate(envoyEncode(many.certPem));
    expect(r).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
    expect(!r.ok && r.detail).toMatch(/more than 64/);

    const long = await createLeaf(ca, { uris: [`spiffe://td/${'a'.repeat(3000)}`] });
    expect(parseCertificatePem(long.certPem)).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
  });

  it('refuses SANs with spaces or control characters, which could not travel in a header', async () => {
    const { ca } = await getPki();
    const spaced = await createLeaf(ca, { dns: ['a b.example.com'] });
    expect(parseCertificatePem(spaced.certPem)).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
    const injected = await createLeaf(ca, { uris: ['spiffe://td/x\r\nx-injected: 1'] });
    expect(parseCertificatePem(injected.certPem)).toMatchObject({ ok: false, reason: 'peer_certificate_malformed' });
  });
});

describe('certificate validity', () => {
  it('denies an expired certificate and one not yet valid', async () => {
    const { expired, notYetValid, checkout } = await getPki();
    const now = Date.now();
    const e = parseCertificatePem(expired.certPem);
    const n = parseCertificatePem(notYetValid.certPem);
    const c = parseCertificatePem(checkout.certPem);
    expect(e.ok && checkValidity(e.certificate, now)).toMatchObject({ ok: false, reason: 'peer_certificate_expired' });
    expect(n.ok && checkValidity(n.certificate, now)).toMatchObject({ ok: false, reason: 'peer_certificate_not_yet_valid' });
    expect(c.ok && checkValidity(c.certificate, now)).toEqual({ ok: true });
  });
});

describe('CA bundle verification', () => {
  it('verifies a leaf issued by the bundle and refuses one from another CA', async () => {
    const { ca, checkout, foreign } = await getPki();
    const anchors = parseTrustAnchors(`# test bundle\n${ca.certPem}`);
    expect(anchors.ok).toBe(true);
    if (!anchors.ok) return;
    const good = parseCertificatePem(checkout.certPem);
    const bad = parseCertificatePem(foreign.certPem);
    expect(good.ok && verifyAgainstAnchors(good.certificate, anchors.anchors, Date.now())).toMatchObject({ ok: true });
    expect(bad.ok && verifyAgainstAnchors(bad.certificate, anchors.anchors, Date.now())).toMatchObject({
      ok: false,
      reason: 'peer_certificate_untrusted',
    });
  });

  it('refuses a bundle that holds a leaf, garbage, or nothing', async () => {
    const { checkout, ca } = await getPki();
    expect(parseTrustAnchors(ca.certPem + checkout.certPem)).toMatchObject({ ok: false });
    expect(parseTrustAnchors('no certificates here')).toMatchObject({ ok: false });
    expect(parseTrustAnchors('-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----')).toMatchObject({ ok: false });
  });

  it('treats an anchor outside its validity window as untrusted', async () => {
    const { ca, checkout } = await getPki();
    const anchors = parseTrustAnchors(ca.certPem);
    const leaf = parseCertificatePem(checkout.certPem);
    if (!anchors.ok || !leaf.ok) throw new Error('fixture');
    const farFuture = Date.now() + 5 * 365 * 86_400_000;
    expect(verifyAgainstAnchors(leaf.certificate, anchors.anchors, farFuture)).toMatchObject({ reason: 'peer_certificate_untrusted' });
  });
});

describe('thumbprints', () => {
  it('converts an XFCC hex hash to the RFC 8705 base64url thumbprint', async () => {
    const { checkout } = await getPki();
    expect(thumbprintFromHex(checkout.hashHex)).toBe(checkout.thumbprint);
    expect(thumbprintFromHex(checkout.hashHex.toUpperCase())).toBe(checkout.thumbprint);
    expect(thumbprintFromHex('abc')).toBeUndefined();
    expect(thumbprintFromHex('z'.repeat(64))).toBeUndefined();
  });
});
