/**
 * mTLS end to end: the real server (startApp over real gRPC on loopback, signing keys over real
 * HTTP from the emulator) fed CheckRequests that carry the caller's certificate exactly as Envoy
 * encodes it, XFCC headers as proxies write them, and — for the listener itself — real TLS
 * handshakes with and without client certificates, including a certificate rotation on disk.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { credentials, Metadata, status, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyCheckRequest, type CheckRequestOptions } from '../../src/cli/check.js';
import type { AuthorizationClient } from '../../src/server/protos.js';
import { CHECKOUT_SPIFFE, createLeaf, createTestPki, ENVOY_SPIFFE, envoyEncode, FRONT_PROXY_SPIFFE, type CertMaterial, type TestPki } from '../fixtures/certs.js';
import { allowance, authorizationClient, denial, fakeClock, startHarness, type CheckResponse, type CheckResult, type Harness } from '../support/harness.js';

const SHOP_PATTERN = 'spiffe://cluster.local/ns/shop/sa/*';
const BILLING_SPIFFE = 'spiffe://cluster.local/ns/billing/sa/invoicer';
const EXPORTER_SPIFFE = 'spiffe://cluster.local/ns/batch/sa/exporter';
const ROGUE_PROXY_SPIFFE = 'spiffe://cluster.local/ns/edge/sa/rogue-proxy';

/** The rules every peer-identity harness of this file uses; selected by the `route` context extension. */
const RULES = [
  { name: 'shop', match: { contextExtensions: { route: 'shop' } }, require: { peer: { spiffePatterns: [SHOP_PATTERN] } } },
  { name: 'export', match: { contextExtensions: { route: 'export' } }, require: { peer: { peerOnly: true, spiffeIds: [EXPORTER_SPIFFE] } } },
  { name: 'bound-only', match: { contextExtensions: { route: 'bound' } }, require: { peer: { requireBoundToken: true } } },
  { name: 'any-token' },
];

const shop = { route: 'shop' };
const exporter = { route: 'export' };
const boundOnly = { route: 'bound' };

// Certificates are generated once for the whole file (ECDSA P-256, a few milliseconds each).
let pki: TestPki;
let billing: CertMaterial;
let batchExporter: CertMaterial;
let rotatedServer: CertMaterial;
let dir: string;
let files: { caBundle: string; cert: string; key: string; ca: string };

beforeAll(async () => {
  pki = await createTestPki();
  [billing, batchExporter, rotatedServer] = await Promise.all([
    createLeaf(pki.ca, { subject: 'CN=invoicer,O=billing', uris: [BILLING_SPIFFE] }),
    createLeaf(pki.ca, { subject: 'CN=exporter,O=batch', uris: [EXPORTER_SPIFFE] }),
    createLeaf(pki.ca, { subject: 'CN=localhost,O=rotated', dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' }),
  ]);
  dir = await mkdtemp(join(tmpdir(), 'entra-authz-mtls-it-'));
  files = { caBundle: join(dir, 'client-ca.pem'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
  await Promise.all([
    writeFile(files.caBundle, `# client CA\n${pki.ca.certPem}`),
    writeFile(files.cert, pki.server.certPem),
    writeFile(files.key, pki.server.keyPem),
    writeFile(files.ca, pki.ca.certPem),
  ]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Envoy's `source` for a downstream that presented `cert`, whose principal (first URI SAN) Envoy also sends. */
function presenting(cert: CertMaterial, principal: string): CheckRequestOptions {
  return { sourceCertificate: envoyEncode(cert.certPem), sourcePrincipal: principal };
}

/** One XFCC element as Envoy writes it (`Cert` URL-encoded and quoted). */
function xfccElement(e: { by?: string; hash?: string; cert?: CertMaterial; uris?: readonly string[]; dns?: readonly string[] }): string {
  return [
    ...(e.by !== undefined ? [`By=${e.by}`] : []),
    ...(e.hash !== undefined ? [`Hash=${e.hash}`] : []),
    ...(e.cert !== undefined ? [`Cert="${envoyEncode(e.cert.certPem)}"`] : []),
    ...(e.uris ?? []).map((u) => `URI=${u}`),
    ...(e.dns ?? []).map((d) => `DNS=${d}`),
  ].join(';');
}

/** An element the front proxy adds for the checkout workload, with its certificate. */
const checkoutViaProxy = (): string => xfccElement({ by: FRONT_PROXY_SPIFFE, hash: pki.checkout.hashHex, cert: pki.checkout, uris: [CHECKOUT_SPIFFE] });

const boundTo = (h: Harness, cert: CertMaterial): Promise<string> => h.emulator.issueToken({ claims: { cnf: { 'x5t#S256': cert.thumbprint } } });

describe('peer identity from the certificate Envoy forwards (source.certificate), CA bundle configured', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ clock: fakeClock(Date.now()), peer: { caBundleFile: files.caBundle }, rules: RULES });
    await h.waitServing();
  });
  afterAll(() => h.close());

  it('allows a leaf matching the rule pattern and passes its identity upstream in headers and metadata', async () => {
    const token = await h.emulator.issueToken();
    const a = allowance(await h.check({ token, contextExtensions: shop, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
    expect(a.headers).toMatchObject({ 'x-entra-peer-principal': CHECKOUT_SPIFFE, 'x-entra-peer-fingerprint': pki.checkout.hashHex });
    expect(a.metadata).toMatchObject({
      rule: 'shop',
      reason: 'allowed',
      peer_source: 'certificate',
      peer_principal: CHECKOUT_SPIFFE,
      peer_spiffe_id: CHECKOUT_SPIFFE,
      peer_fingerprint_sha256: pki.checkout.hashHex,
      peer_ca_verified: 'true',
    });
  });

  it('reports the peer upstream on a rule that asks only for a token', async () => {
    const token = await h.emulator.issueToken();
    const a = allowance(await h.check({ token, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
    expect(a.metadata).toMatchObject({ rule: 'any-token', peer_principal: CHECKOUT_SPIFFE });
    expect(a.headers).toMatchObject({ 'x-entra-peer-principal': CHECKOUT_SPIFFE, 'x-entra-peer-fingerprint': pki.checkout.hashHex });
  });

  it('does not deny a token-only rule for an unreadable peer, and reports no peer', async () => {
    const token = await h.emulator.issueToken();
    const a = allowance(await h.check({ token, sourceCertificate: 'not%20a%20certificate', sourcePrincipal: CHECKOUT_SPIFFE }));
    expect(a.metadata).not.toHaveProperty('peer_principal');
    expect(a.remove).toEqual(expect.arrayContaining(['x-entra-peer-principal', 'x-entra-peer-fingerprint']));
  });

  it('removes client-sent peer headers when no peer identity is known', async () => {
    const token = await h.emulator.issueToken();
    const a = allowance(await h.check({ token, headers: { 'x-entra-peer-principal': CHECKOUT_SPIFFE, 'x-entra-peer-fingerprint': 'forged' } }));
    expect(a.headers).not.toHaveProperty('x-entra-peer-principal');
    expect(a.remove).toEqual(expect.arrayContaining(['x-entra-peer-principal', 'x-entra-peer-fingerprint']));
    expect(a.metadata).not.toHaveProperty('peer_principal');
  });

  it('denies a leaf from another namespace with 403 peer_not_allowed', async () => {
    const token = await h.emulator.issueToken();
    const d = denial(await h.check({ token, contextExtensions: shop, ...presenting(billing, BILLING_SPIFFE) }));
    expect(d).toMatchObject({ reason: 'peer_not_allowed', grpcCode: status.PERMISSION_DENIED, httpStatus: 'Forbidden' });
    expect(d.headers['www-authenticate']).toContain('error="insufficient_scope"');
  });

  it('denies a request without any peer identity with peer_missing', async () => {
    const token = await h.emulator.issueToken();
    expect(denial(await h.check({ token, contextExtensions: shop }))).toMatchObject({ reason: 'peer_missing', httpStatus: 'Unauthorized' });
  });

  it('denies an expired leaf and a leaf not yet valid', async () => {
    const token = await h.emulator.issueToken();
    const expired = denial(await h.check({ token, contextExtensions: shop, ...presenting(pki.expired, CHECKOUT_SPIFFE) }));
    expect(expired).toMatchObject({ reason: 'peer_certificate_expired', grpcCode: status.UNAUTHENTICATED, httpStatus: 'Unauthorized' });
    expect(denial(await h.check({ token, contextExtensions: shop, ...presenting(pki.notYetValid, CHECKOUT_SPIFFE) })).reason).toBe('peer_certificate_not_yet_valid');
  });

  it('denies a principal that disagrees with the certificate SAN with peer_identity_conflict', async () => {
    const token = await h.emulator.issueToken();
    const d = denial(await h.check({ token, contextExtensions: shop, ...presenting(pki.checkout, 'spiffe://cluster.local/ns/shop/sa/cart') }));
    expect(d).toMatchObject({ reason: 'peer_identity_conflict', httpStatus: 'Unauthorized' });
  });

  it('denies a leaf issued by a CA outside the bundle, and a principal without a certificate, with peer_certificate_untrusted', async () => {
    const token = await h.emulator.issueToken();
    expect(denial(await h.check({ token, contextExtensions: shop, ...presenting(pki.foreign, CHECKOUT_SPIFFE) })).reason).toBe('peer_certificate_untrusted');
    expect(denial(await h.check({ token, contextExtensions: shop, sourcePrincipal: CHECKOUT_SPIFFE })).reason).toBe('peer_certificate_untrusted');
  });

  describe('denies unusable certificates with peer_certificate_malformed, never crashing', () => {
    const pem = (): string => pki.checkout.certPem;
    const cases: [string, () => string][] = [
      ['text that is no PEM', () => 'not-a-certificate'],
      ['broken URL encoding', () => envoyEncode(pem()).replace('%0A', '%0G')],
      ['a truncated %-escape', () => `${envoyEncode(pem())}%`],
      ['a whole chain where a leaf is expected', () => envoyEncode(pem() + pki.ca.certPem)],
      ['a PEM cut in the middle', () => envoyEncode(pem().slice(0, pem().length / 2))],
      ['a PEM block around bytes that are no certificate', () => envoyEncode(`-----BEGIN CERTIFICATE-----\n${Buffer.from('hello, world').toString('base64')}\n-----END CERTIFICATE-----\n`)],
      ['an oversized encoding', () => 'A'.repeat(70_000)],
    ];
    for (const [name, encoded] of cases) {
      it(`for ${name}`, async () => {
        const token = await h.emulator.issueToken();
        const d = denial(await h.check({ token, contextExtensions: shop, sourceCertificate: encoded(), sourcePrincipal: CHECKOUT_SPIFFE }));
        expect(d).toMatchObject({ reason: 'peer_certificate_malformed', grpcCode: status.UNAUTHENTICATED, httpStatus: 'Unauthorized' });
      });
    }

    it('and keeps answering afterwards', async () => {
      const token = await h.emulator.issueToken();
      for (const [, encoded] of cases) denial(await h.check({ token, contextExtensions: shop, sourceCertificate: encoded(), sourcePrincipal: CHECKOUT_SPIFFE }));
      allowance(await h.check({ token: await h.emulator.issueToken(), contextExtensions: shop, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
    });
  });

  describe('a peer-only rule', () => {
    it('allows an internal caller by its certificate alone, without a token', async () => {
      const a = allowance(await h.check({ contextExtensions: exporter, ...presenting(batchExporter, EXPORTER_SPIFFE) }));
      expect(a.headers).toMatchObject({ 'x-entra-peer-principal': EXPORTER_SPIFFE, 'x-entra-peer-fingerprint': batchExporter.hashHex });
      expect(a.headers).not.toHaveProperty('x-entra-oid');
      expect(a.metadata).toMatchObject({ rule: 'export', reason: 'allowed', peer_spiffe_id: EXPORTER_SPIFFE });
      expect(a.metadata).not.toHaveProperty('oid');
    });

    it('denies another workload without a token with peer_not_allowed', async () => {
      expect(denial(await h.check({ contextExtensions: exporter, ...presenting(pki.checkout, CHECKOUT_SPIFFE) })).reason).toBe('peer_not_allowed');
    });

    it('still verifies a token that is sent', async () => {
      expect(denial(await h.check({ token: 'not.a.jwt', contextExtensions: exporter, ...presenting(batchExporter, EXPORTER_SPIFFE) })).reason).toBe('token_malformed');
    });
  });

  describe('certificate-bound tokens (RFC 8705)', () => {
    it('allows a token bound to the presented certificate', async () => {
      const token = await boundTo(h, pki.checkout);
      const a = allowance(await h.check({ token, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
      expect(a.metadata).toMatchObject({ rule: 'any-token', peer_principal: CHECKOUT_SPIFFE, peer_fingerprint_sha256: pki.checkout.hashHex });
      allowance(await h.check({ token, contextExtensions: boundOnly, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
    });

    it('accepts a bound token sent with the MTLS_POP scheme', async () => {
      const token = await boundTo(h, pki.checkout);
      allowance(await h.check({ headers: { authorization: `MTLS_POP ${token}` }, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
    });

    it('denies a token bound to another certificate with token_binding_mismatch', async () => {
      const token = await boundTo(h, billing);
      const d = denial(await h.check({ token, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
      expect(d).toMatchObject({ reason: 'token_binding_mismatch', httpStatus: 'Unauthorized' });
      expect(d.headers['www-authenticate']).toContain('error="invalid_token"');
    });

    it('denies a bound token when no certificate is presented with token_binding_no_certificate', async () => {
      const token = await boundTo(h, pki.checkout);
      const d = denial(await h.check({ token }));
      expect(d).toMatchObject({ reason: 'token_binding_no_certificate', httpStatus: 'Unauthorized' });
      expect(d.headers['www-authenticate']).toContain('error="invalid_token"');
    });

    it('denies an unbound token sent with the MTLS_POP scheme with token_not_bound', async () => {
      const token = await h.emulator.issueToken();
      const d = denial(await h.check({ headers: { authorization: `MTLS_POP ${token}` }, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
      expect(d).toMatchObject({ reason: 'token_not_bound', httpStatus: 'Unauthorized' });
    });

    it('refuses an unbound Bearer token on a rule with requireBoundToken', async () => {
      const token = await h.emulator.issueToken();
      expect(denial(await h.check({ token, contextExtensions: boundOnly, ...presenting(pki.checkout, CHECKOUT_SPIFFE) })).reason).toBe('token_not_bound');
      // The same token is fine where binding is not required.
      allowance(await h.check({ token, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
    });
  });

  describe('x-forwarded-client-cert while peer.xfcc.trusted is off', () => {
    it('ignores a client-supplied element: no peer is derived from it', async () => {
      const token = await h.emulator.issueToken();
      const d = denial(await h.check({ token, contextExtensions: shop, headers: { 'x-forwarded-client-cert': checkoutViaProxy() } }));
      expect(d.reason).toBe('peer_missing');
    });

    it('decides on the direct peer, not on the element', async () => {
      const token = await h.emulator.issueToken();
      const d = denial(await h.check({ token, contextExtensions: shop, ...presenting(billing, BILLING_SPIFFE), headers: { 'x-forwarded-client-cert': checkoutViaProxy() } }));
      expect(d.reason).toBe('peer_not_allowed');
    });
  });
});

describe('peer identity from a trusted x-forwarded-client-cert', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      clock: fakeClock(Date.now()),
      peer: { xfcc: { trusted: true, proxies: [FRONT_PROXY_SPIFFE] } },
      rules: RULES,
    });
    await h.waitServing();
  });
  afterAll(() => h.close());

  /** A request arriving from the front proxy's mTLS connection with an XFCC header. */
  const viaProxy = (xfcc: string, more: CheckRequestOptions = {}): CheckRequestOptions => ({
    ...presenting(pki.frontProxy, FRONT_PROXY_SPIFFE),
    ...more,
    headers: { 'x-forwarded-client-cert': xfcc, ...more.headers },
  });

  it('uses the element the trusted proxy added when its Hash and Cert agree', async () => {
    const token = await h.emulator.issueToken();
    const a = allowance(await h.check({ token, contextExtensions: shop, ...viaProxy(checkoutViaProxy()) }));
    expect(a.headers).toMatchObject({ 'x-entra-peer-principal': CHECKOUT_SPIFFE, 'x-entra-peer-fingerprint': pki.checkout.hashHex });
    expect(a.metadata).toMatchObject({ peer_source: 'xfcc', peer_principal: CHECKOUT_SPIFFE, peer_forwarded_by: FRONT_PROXY_SPIFFE });
  });

  it('accepts the element when only the principal of the direct peer is known', async () => {
    const token = await h.emulator.issueToken();
    allowance(await h.check({ token, contextExtensions: shop, sourcePrincipal: FRONT_PROXY_SPIFFE, headers: { 'x-forwarded-client-cert': checkoutViaProxy() } }));
  });

  it('checks a bound token against the forwarded client certificate, not the proxy certificate', async () => {
    allowance(await h.check({ token: await boundTo(h, pki.checkout), ...viaProxy(checkoutViaProxy()) }));
    expect(denial(await h.check({ token: await boundTo(h, pki.frontProxy), ...viaProxy(checkoutViaProxy()) })).reason).toBe('token_binding_mismatch');
  });

  it('checks a bound token against the forwarded Hash when no Cert is sent', async () => {
    const hashOnly = xfccElement({ by: FRONT_PROXY_SPIFFE, hash: pki.checkout.hashHex, uris: [CHECKOUT_SPIFFE] });
    allowance(await h.check({ token: await boundTo(h, pki.checkout), contextExtensions: shop, ...viaProxy(hashOnly) }));
  });

  it('denies a bound token when neither the element nor the direct peer carries a certificate', async () => {
    const token = await boundTo(h, pki.checkout);
    const uriOnly = xfccElement({ by: FRONT_PROXY_SPIFFE, uris: [CHECKOUT_SPIFFE] });
    expect(denial(await h.check({ token, sourcePrincipal: FRONT_PROXY_SPIFFE, headers: { 'x-forwarded-client-cert': uriOnly } })).reason).toBe(
      'token_binding_no_certificate',
    );
    expect(denial(await h.check({ token, sourcePrincipal: CHECKOUT_SPIFFE })).reason).toBe('token_binding_no_certificate');
  });

  it('never uses an earlier element, which the client itself may have written', async () => {
    const token = await h.emulator.issueToken();
    const forged = xfccElement({ by: FRONT_PROXY_SPIFFE, hash: pki.checkout.hashHex, cert: pki.checkout, uris: [CHECKOUT_SPIFFE] });
    const nearest = xfccElement({ by: FRONT_PROXY_SPIFFE, hash: billing.hashHex, cert: billing, uris: [BILLING_SPIFFE] });
    const d = denial(await h.check({ token, contextExtensions: shop, ...viaProxy(`${forged},${nearest}`) }));
    expect(d.reason).toBe('peer_not_allowed');
  });

  it('denies an element added by a proxy that is not listed with xfcc_untrusted', async () => {
    const token = await h.emulator.issueToken();
    const rogue = xfccElement({ by: ROGUE_PROXY_SPIFFE, hash: pki.checkout.hashHex, cert: pki.checkout, uris: [CHECKOUT_SPIFFE] });
    const d = denial(await h.check({ token, contextExtensions: shop, ...viaProxy(rogue) }));
    expect(d).toMatchObject({ reason: 'xfcc_untrusted', httpStatus: 'Unauthorized' });
    // A trusted element followed by one without By: the nearest one counts.
    const noBy = xfccElement({ hash: pki.checkout.hashHex, cert: pki.checkout, uris: [CHECKOUT_SPIFFE] });
    expect(denial(await h.check({ token, contextExtensions: shop, ...viaProxy(`${checkoutViaProxy()},${noBy}`) })).reason).toBe('xfcc_untrusted');
  });

  it('denies an element whose Hash is not the SHA-256 of its Cert with xfcc_untrusted', async () => {
    const token = await h.emulator.issueToken();
    const mismatched = xfccElement({ by: FRONT_PROXY_SPIFFE, hash: billing.hashHex, cert: pki.checkout, uris: [CHECKOUT_SPIFFE] });
    expect(denial(await h.check({ token, contextExtensions: shop, ...viaProxy(mismatched) })).reason).toBe('xfcc_untrusted');
  });

  it('denies an element whose URI is not among the SANs of its Cert with peer_identity_conflict', async () => {
    const token = await h.emulator.issueToken();
    const stray = xfccElement({ by: FRONT_PROXY_SPIFFE, cert: pki.checkout, uris: ['spiffe://cluster.local/ns/shop/sa/admin'] });
    expect(denial(await h.check({ token, contextExtensions: shop, ...viaProxy(stray) })).reason).toBe('peer_identity_conflict');
  });

  it('denies when the direct peer is neither the listed proxy nor the forwarded client', async () => {
    const token = await h.emulator.issueToken();
    const d = denial(await h.check({ token, contextExtensions: shop, ...presenting(billing, BILLING_SPIFFE), headers: { 'x-forwarded-client-cert': checkoutViaProxy() } }));
    expect(d.reason).toBe('peer_identity_conflict');
  });

  it('denies a header that does not parse with xfcc_malformed', async () => {
    const token = await h.emulator.issueToken();
    expect(denial(await h.check({ token, contextExtensions: shop, ...viaProxy(`By=${FRONT_PROXY_SPIFFE};Cert="unterminated`) })).reason).toBe('xfcc_malformed');
    expect(denial(await h.check({ token, contextExtensions: shop, ...viaProxy(`${checkoutViaProxy()},,`) })).reason).toBe('xfcc_malformed');
  });

  it('falls back to the direct peer when no XFCC header is sent', async () => {
    const token = await h.emulator.issueToken();
    const a = allowance(await h.check({ token, contextExtensions: shop, ...presenting(pki.checkout, CHECKOUT_SPIFFE) }));
    expect(a.metadata).toMatchObject({ peer_source: 'certificate', peer_principal: CHECKOUT_SPIFFE });
    expect(a.metadata).not.toHaveProperty('peer_forwarded_by');
  });
});

// ---------------------------------------------------------------------------------------------
// The listener itself: server.tls with required, allow-listed client certificates.
// ---------------------------------------------------------------------------------------------

/** Connect to the IP, verify and send SNI for the DNS name (an IP as SNI is deprecated in Node). */
const TLS_CHANNEL: ChannelOptions = { 'grpc.ssl_target_name_override': 'localhost' };

const fingerprintOf = (cert: PeerCertificate): string => cert.fingerprint256.replace(/:/g, '').toLowerCase();

/** TLS credentials trusting the test CA, presenting `identity`, recording each server certificate seen. */
function tlsCredentials(identity: CertMaterial | undefined, seen: string[]): ChannelCredentials {
  return credentials.createSsl(
    Buffer.from(pki.ca.certPem),
    identity ? Buffer.from(identity.keyPem) : null,
    identity ? Buffer.from(identity.certPem) : null,
    {
      checkServerIdentity: (host, cert) => {
        seen.push(fingerprintOf(cert));
        return checkServerIdentity(host, cert);
      },
    },
  );
}

type CheckWithOptions = (request: unknown, metadata: Metadata, options: { deadline: number }, cb: (err: ServiceError | null, res?: unknown) => void) => void;

function send(client: AuthorizationClient, request: unknown): Promise<CheckResult> {
  return new Promise((resolve) => {
    (client.Check as unknown as CheckWithOptions).call(client, request, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) => {
      if (err) resolve({ kind: 'error', code: err.code, details: err.details });
      else resolve({ kind: 'response', response: (res ?? {}) as CheckResponse });
    });
  });
}

describe('the TLS listener (server.tls) with allow-listed client certificates', () => {
  let h: Harness;
  /** Server certificates seen by the harness's own (long-lived) connection. */
  const harnessSeen: string[] = [];
  const opened: AuthorizationClient[] = [];

  /** A fresh connection of its own (no shared subchannel), optionally with a client certificate. */
  const connect = (identity?: CertMaterial): { seen: string[]; check(o?: CheckRequestOptions): Promise<CheckResult> } => {
    const seen: string[] = [];
    const client = authorizationClient(h.app.address, tlsCredentials(identity, seen), { ...TLS_CHANNEL, 'grpc.use_local_subchannel_pool': 1 });
    opened.push(client);
    return { seen, check: (o) => send(client, envoyCheckRequest(o)) };
  };

  beforeAll(async () => {
    h = await startHarness({
      clock: fakeClock(Date.now()),
      server: { tls: { certFile: files.cert, keyFile: files.key, caFile: files.ca, requireClientCert: true, allowedClients: [ENVOY_SPIFFE] } },
      clientCredentials: tlsCredentials(pki.envoyClient, harnessSeen),
      channelOptions: TLS_CHANNEL,
      deps: { tls: { reloadIntervalMs: 20 } },
    });
    await h.waitServing();
  });
  afterAll(async () => {
    for (const client of opened) client.close();
    await h.close();
  });

  it('answers Check calls over TLS for a client whose certificate is on allowedClients', async () => {
    const token = await h.emulator.issueToken();
    allowance(await h.check({ token }));
    expect(denial(await h.check({})).reason).toBe('token_missing');
    expect(harnessSeen).toEqual([pki.server.hashHex]);
  });

  it('refuses a client without a certificate at the handshake', async () => {
    const result = await connect().check({ token: await h.emulator.issueToken() });
    expect(result).toMatchObject({ kind: 'error', code: status.UNAVAILABLE });
  });

  it('refuses a client whose certificate comes from another CA at the handshake', async () => {
    const result = await connect(pki.foreign).check({ token: await h.emulator.issueToken() });
    expect(result).toMatchObject({ kind: 'error', code: status.UNAVAILABLE });
  });

  it('answers PERMISSION_DENIED to a verified client whose identity is not on the list', async () => {
    const client = connect(pki.checkout);
    const token = await h.emulator.issueToken();
    expect(await client.check({ token })).toMatchObject({ kind: 'error', code: status.PERMISSION_DENIED });
    // The decision is cached per certificate; it stays a refusal on the same connection.
    expect(await client.check({ token })).toMatchObject({ kind: 'error', code: status.PERMISSION_DENIED });
  });

  it('serves a certificate rotated on disk to new connections while checks on the established one keep succeeding', async () => {
    const token = await h.emulator.issueToken();
    allowance(await h.check({ token }));

    // Steady traffic on the harness's established connection for the whole rotation.
    let rotating = true;
    const during: CheckResult[] = [];
    const traffic = (async () => {
      while (rotating) during.push(await h.check({ token }));
    })();

    // Replace each file atomically, key first: in between, the pair does not match and must not be applied.
    const replace = async (path: string, content: string): Promise<void> => {
      await writeFile(`${path}.tmp`, content);
      await rename(`${path}.tmp`, path);
    };
    await replace(files.key, rotatedServer.keyPem);
    await replace(files.cert, rotatedServer.certPem);

    // Bounded polling: new connections until one is served the new certificate.
    let latest: string | undefined;
    const deadline = Date.now() + 10_000;
    while (latest !== rotatedServer.hashHex) {
      if (Date.now() > deadline) throw new Error(`new connections still see ${latest ?? 'nothing'}`);
      const fresh = connect(pki.envoyClient);
      allowance(await fresh.check({ token }));
      latest = fresh.seen.at(-1);
      expect([pki.server.hashHex, rotatedServer.hashHex]).toContain(latest);
    }
    rotating = false;
    await traffic;

    expect(during.length).toBeGreaterThan(0);
    for (const result of during) allowance(result);
    // The established connection was never re-handshaken and still works.
    allowance(await h.check({ token }));
    expect(harnessSeen).toEqual([pki.server.hashHex]);
  });
});
