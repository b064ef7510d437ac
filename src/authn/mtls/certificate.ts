/**
 * Client certificates as Envoy forwards them: URL-encoded PEM (`source.certificate`, XFCC `Cert`)
 * decoded, parsed with node:crypto, fingerprinted, checked for validity and optionally verified
 * against a CA bundle. Every function returns a result; none throws.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readCertificateFields } from './der.js';
import { fail, type MtlsFailure } from './types.js';

export interface CertificateLimits {
  /** Longest URL-encoded certificate accepted (before decoding). */
  readonly maxEncodedBytes: number;
  /** Most subjectAltName entries (of any type) accepted. */
  readonly maxSans: number;
  /** Longest single URI or DNS SAN accepted. */
  readonly maxSanLength: number;
}

export const DEFAULT_CERTIFICATE_LIMITS: CertificateLimits = Object.freeze({
  maxEncodedBytes: 64 * 1024,
  maxSans: 64,
  maxSanLength: 2048,
});

export interface ParsedCertificate {
  /** node:crypto's view, kept for CA verification. */
  readonly x509: X509Certificate;
  /** Subject in RFC 2253 order (`CN=a,O=b`), as Envoy prints it in `principal` and XFCC. */
  readonly subject: string;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** Lower-case hex SHA-256 of the DER. */
  readonly fingerprintSha256: string;
  /** base64url(SHA-256(DER)), RFC 8705 `x5t#S256`. */
  readonly thumbprintS256: string;
}

export type CertificateResult = { readonly ok: true; readonly certificate: ParsedCertificate } | MtlsFailure;

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes Envoy's URL-encoded PEM (`%0A`, `%20`, `%2B`, `%2F`, `%3D`; any case). */
export function decodeEnvoyPem(encoded: string, limits: CertificateLimits = DEFAULT_CERTIFICATE_LIMITS): { ok: true; pem: string } | MtlsFailure {
  if (encoded.length > limits.maxEncodedBytes) {
    return fail('peer_certificate_malformed', `the encoded certificate exceeds ${limits.maxEncodedBytes} bytes`);
  }
  try {
    return { ok: true, pem: decodeURIComponent(encoded) };
  } catch {
    return fail('peer_certificate_malformed', 'the certificate is not valid URL encoding');
  }
}

/** Counts PEM certificate blocks without a regular expression over attacker-sized input. */
function countBlocks(pem: string): number {
  let n = 0;
  for (let i = pem.indexOf(BEGIN); i !== -1; i = pem.indexOf(BEGIN, i + BEGIN.length)) n++;
  return n;
}

/** Parses a PEM holding exactly one certificate (a leaf); a chain or any other content is refused. */
export function parseCertificatePem(pem: string, limits: CertificateLimits = DEFAULT_CERTIFICATE_LIMITS): CertificateResult {
  if (pem.length > limits.maxEncodedBytes) {
    return fail('peer_certificate_malformed', `the certificate exceeds ${limits.maxEncodedBytes} bytes`);
  }
  const blocks = countBlocks(pem);
  if (blocks === 0) return fail('peer_certificate_malformed', 'no PEM certificate block');
  if (blocks > 1) return fail('peer_certificate_malformed', `a chain of ${blocks} certificates where a single leaf is expected`);
  const text = pem.trim();
  if (!text.startsWith(BEGIN) || !text.endsWith(END)) {
    return fail('peer_certificate_malformed', 'unexpected content around the PEM block');
  }
  const body = text.slice(BEGIN.length, text.length - END.length).replace(/[\r\n\t ]+/g, '');
  if (body.length === 0 || body.length % 4 !== 0 || !BASE64.test(body)) {
    return fail('peer_certificate_malformed', 'the PEM body is not valid base64');
  }
  return parseCertificateDer(Buffer.from(body, 'base64'), limits);
}

/** Parses one DER certificate. */
export function parseCertificateDer(der: Uint8Array, limits: CertificateLimits = DEFAULT_CERTIFICATE_LIMITS): CertificateResult {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch {
    return fail('peer_certificate_malformed', 'the certificate cannot be parsed');
  }
  let fields: ReturnType<typeof readCertificateFields>;
  try {
    fields = readCertificateFields(der, limits);
  } catch {
    fields = 'the certificate cannot be read';
  }
  if (typeof fields === 'string') return fail('peer_certificate_malformed', fields);
  const subject = rfc2253Subject(x509);
  if (subject === undefined) return fail('peer_certificate_malformed', 'the subject contains control characters');
  const digest = createHash('sha256').update(der).digest();
  return {
    ok: true,
    certificate: {
      x509,
      subject,
      uriSans: fields.uriSans,
      dnsSans: fields.dnsSans,
      notBeforeMs: fields.notBeforeMs,
      notAfterMs: fields.notAfterMs,
      fingerprintSha256: digest.toString('hex'),
      thumbprintS256: digest.toString('base64url'),
    },
  };
}

/** Decodes Envoy's URL-encoded PEM and parses it. */
export function parseEnvoyCertificate(encoded: string, limits: CertificateLimits = DEFAULT_CERTIFICATE_LIMITS): CertificateResult {
  const decoded = decodeEnvoyPem(encoded, limits);
  return decoded.ok ? parseCertificatePem(decoded.pem, limits) : decoded;
}

/**
 * Node prints the subject one RDN per line in DER order, values already escaped RFC 2253-style
 * (its flags include ASN1_STRFLGS_ESC_2253 and ESC_CTRL); Envoy prints RFC 2253, i.e. the reverse
 * order joined by commas. Multi-valued RDNs and non-ASCII values may still differ in form, which
 * only matters for certificates without SANs.
 */
function rfc2253Subject(x509: X509Certificate): string | undefined {
  let subject: string;
  try {
    subject = x509.subject ?? '';
  } catch {
    return undefined;
  }
  const out = subject === '' ? '' : subject.split('\n').reverse().join(',');
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(out) ? undefined : out;
}

/** The principal Envoy derives from a certificate: first URI SAN, else first DNS SAN, else Subject. */
export function envoyPrincipal(cert: Pick<ParsedCertificate, 'uriSans' | 'dnsSans' | 'subject'>): string {
  return cert.uriSans[0] ?? cert.dnsSans[0] ?? cert.subject;
}

/** Checks the validity window at `nowMs` (no skew: Envoy's handshake applies none either). */
export function checkValidity(cert: Pick<ParsedCertificate, 'notBeforeMs' | 'notAfterMs'>, nowMs: number): { ok: true } | MtlsFailure {
  if (nowMs < cert.notBeforeMs) {
    return fail('peer_certificate_not_yet_valid', `the certificate is valid from ${new Date(cert.notBeforeMs).toISOString()}`);
  }
  if (nowMs > cert.notAfterMs) {
    return fail('peer_certificate_expired', `the certificate expired at ${new Date(cert.notAfterMs).toISOString()}`);
  }
  return { ok: true };
}

/** A CA certificate from the configured bundle, ready to verify leaves against. */
export interface TrustAnchor {
  readonly x509: X509Certificate;
  readonly subject: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly fingerprintSha256: string;
}

export const MAX_TRUST_ANCHORS = 1000;

/**
 * Builds trust anchors from a PEM bundle (text between blocks, e.g. comments, is ignored). Every
 * block must be a CA certificate. Used at config load: returns problems rather than throwing.
 */
export function parseTrustAnchors(bundle: string): { ok: true; anchors: readonly TrustAnchor[] } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const anchors: TrustAnchor[] = [];
  let index = 0;
  for (let start = bundle.indexOf(BEGIN); start !== -1; start = bundle.indexOf(BEGIN, start + BEGIN.length)) {
    const end = bundle.indexOf(END, start);
    if (end === -1) {
      problems.push(`certificate #${index + 1}: no END line`);
      break;
    }
    const parsed = parseCertificatePem(bundle.slice(start, end + END.length), {
      maxEncodedBytes: 1024 * 1024,
      maxSans: 4096,
      maxSanLength: 4096,
    });
    index++;
    if (!parsed.ok) {
      problems.push(`certificate #${index}: ${parsed.detail}`);
      continue;
    }
    const { x509, subject, notBeforeMs, notAfterMs, fingerprintSha256 } = parsed.certificate;
    if (!x509.ca) {
      problems.push(`certificate #${index} (${subject}) is not a CA certificate`);
      continue;
    }
    anchors.push({ x509, subject, notBeforeMs, notAfterMs, fingerprintSha256 });
  }
  if (index === 0) problems.push('the bundle contains no PEM certificate');
  if (index > MAX_TRUST_ANCHORS) problems.push(`the bundle holds more than ${MAX_TRUST_ANCHORS} certificates`);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, anchors };
}

/**
 * Finds the anchor that issued and signed `cert` (name / key-identifier match by OpenSSL, then the
 * signature). Time-independent, so a caller may cache it per certificate. Envoy forwards the leaf
 * only, so the anchor must be the leaf's direct issuer (a root or an intermediate in the bundle).
 */
export function findIssuer(cert: Pick<ParsedCertificate, 'x509'>, anchors: readonly TrustAnchor[]): TrustAnchor | undefined {
  for (const anchor of anchors) {
    try {
      if (cert.x509.checkIssued(anchor.x509) && cert.x509.verify(anchor.x509.publicKey)) return anchor;
    } catch {
      // An unusable key type for this anchor: try the next one.
    }
  }
  return undefined;
}

/** Verifies `cert` against the anchors at `nowMs`; the issuing anchor must be valid then too. */
export function verifyAgainstAnchors(
  cert: Pick<ParsedCertificate, 'x509'>,
  anchors: readonly TrustAnchor[],
  nowMs: number,
  issuer: TrustAnchor | undefined = findIssuer(cert, anchors),
): { ok: true; anchor: TrustAnchor } | MtlsFailure {
  if (issuer === undefined) return fail('peer_certificate_untrusted', 'no configured CA issued the certificate');
  if (nowMs < issuer.notBeforeMs || nowMs > issuer.notAfterMs) {
    return fail('peer_certificate_untrusted', `the issuing CA (${issuer.subject}) is outside its validity window`);
  }
  return { ok: true, anchor: issuer };
}

/** Converts a hex SHA-256 (XFCC `Hash`) to the base64url thumbprint form; undefined when not 64 hex digits. */
export function thumbprintFromHex(hex: string): string | undefined {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return undefined;
  return Buffer.from(hex, 'hex').toString('base64url');
}
