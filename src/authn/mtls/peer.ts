/**
 * Resolves the caller's peer identity from a CheckRequest.
 *
 * Sources, in precedence order (docs/mtls.md):
 *
 * 1. A trusted XFCC element — only when `peer.xfcc.trusted`, only the last element (written by the
 *    nearest proxy) and only when its `By` is a configured proxy. With `Cert`, the certificate is
 *    parsed, `Hash` must match it, and `URI`/`DNS` must be among its SANs. The direct peer, when
 *    known, must be either that proxy (`principal == By`) or the same client; otherwise → conflict.
 * 2. `source.certificate` (Envoy's `include_peer_certificate`): parsed; `source.principal`, when set,
 *    must be the principal Envoy derives from it (first URI SAN, else first DNS SAN, else Subject).
 * 3. `source.principal` alone.
 * 4. Nothing: no peer (`{ ok: true, peer: undefined }`); requirements decide whether that denies.
 *
 * Every parsed certificate must be inside its validity window. With a CA bundle configured, the
 * resolved identity must come with a certificate issued by the bundle.
 *
 * Pure: no I/O, no clock (`nowMs` is passed in), never throws.
 */
import type { RequestView } from '../../core/request.js';
import {
  checkValidity,
  envoyPrincipal,
  findIssuer,
  parseEnvoyCertificate,
  thumbprintFromHex,
  verifyAgainstAnchors,
  type CertificateResult,
  type ParsedCertificate,
  type TrustAnchor,
} from './certificate.js';
import type { PeerSettings } from './settings.js';
import { isDnsName, parseSpiffeId } from './spiffe.js';
import { fail, type MtlsFailure, type PeerIdentity } from './types.js';
import { parseXfcc, selectTrustedElement, xfccHeaderValue, type XfccElement } from './xfcc.js';

export type { PeerIdentity } from './types.js';

export type PeerResult = { readonly ok: true; readonly peer: PeerIdentity | undefined } | MtlsFailure;

/** A parsed certificate plus its (time-independent) issuing anchor, as cached per encoded string. */
export interface CertificateEntry {
  readonly result: CertificateResult;
  /** The anchor that issued it, when anchors are configured and one did. */
  readonly issuer: TrustAnchor | undefined;
}

/** Parses (or looks up) a URL-encoded certificate. */
export type CertificateLookup = (encoded: string) => CertificateEntry;

const MAX_PRINCIPAL_LENGTH = 4096;
const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

type PeerSource = Pick<RequestView, 'source' | 'headers'>;

/** Resolves the peer without caching: parses any certificate afresh. */
export function resolvePeer(request: PeerSource, settings: PeerSettings, nowMs: number): PeerResult {
  return resolvePeerWith(request, settings, nowMs, uncachedLookup(settings));
}

export interface PeerResolver {
  resolve(request: PeerSource, nowMs: number): PeerResult;
}

/**
 * A resolver that caches parsed certificates (parsing and CA signature checks cost ~0.2 ms; Envoy
 * sends the same client certificate on every request). Bounded, oldest entries evicted first;
 * only time-independent results are cached — validity windows are checked on every call.
 */
export function createPeerResolver(settings: PeerSettings, options: { cacheSize?: number } = {}): PeerResolver {
  const max = Math.max(0, Math.floor(options.cacheSize ?? 256));
  const cache = new Map<string, CertificateEntry>();
  const parse = uncachedLookup(settings);
  const lookup: CertificateLookup = (encoded) => {
    const hit = cache.get(encoded);
    if (hit !== undefined) return hit;
    const entry = parse(encoded);
    if (max > 0 && encoded.length <= 16 * 1024) {
      if (cache.size >= max) {
        const oldest = cache.keys().next();
        if (!oldest.done) cache.delete(oldest.value);
      }
      cache.set(encoded, entry);
    }
    return entry;
  };
  return { resolve: (request, nowMs) => resolvePeerWith(request, settings, nowMs, lookup) };
}

function uncachedLookup(settings: PeerSettings): CertificateLookup {
  return (encoded) => {
    const result = parseEnvoyCertificate(encoded, settings.certificateLimits);
    const issuer = result.ok && settings.anchors.length > 0 ? findIssuer(result.certificate, settings.anchors) : undefined;
    return { result, issuer };
  };
}

/** The core of resolvePeer with an injectable certificate lookup (cache). Never throws. */
export function resolvePeerWith(request: PeerSource, settings: PeerSettings, nowMs: number, lookup: CertificateLookup): PeerResult {
  try {
    return resolveUnsafe(request, settings, nowMs, lookup);
  } catch (err) {
    return fail('internal_error', `peer resolution failed: ${(err as Error)?.name ?? 'error'}`);
  }
}

interface Resolved {
  readonly peer: PeerIdentity;
  /** The certificate behind the identity, with its issuer lookup, when there is one. */
  readonly entry: CertificateEntry | undefined;
}

function resolveUnsafe(request: PeerSource, settings: PeerSettings, nowMs: number, lookup: CertificateLookup): PeerResult {
  const direct = resolveDirect(request.source, nowMs, lookup);
  if (!direct.ok) return direct;

  let chosen: Resolved | undefined = direct.resolved;
  if (settings.xfcc.trusted) {
    const header = xfccHeaderValue(request.headers);
    if (header !== undefined) {
      const parsed = parseXfcc(header, settings.xfccLimits);
      if (!parsed.ok) return parsed;
      const selected = selectTrustedElement(parsed.elements, settings.xfcc);
      if (!selected.ok) return selected;
      const forwarded = resolveXfccElement(selected.element, settings, nowMs, lookup);
      if (!forwarded.ok) return forwarded;
      const d = direct.resolved?.peer;
      if (d !== undefined && d.principal !== selected.element.by && d.principal !== forwarded.resolved.peer.principal) {
        return fail(
          'peer_identity_conflict',
          `the direct peer ${JSON.stringify(d.principal.slice(0, 256))} is neither the forwarding proxy nor the forwarded client`,
        );
      }
      chosen = forwarded.resolved;
    }
  }
  if (chosen === undefined) return { ok: true, peer: undefined };

  if (settings.anchors.length > 0) {
    if (chosen.entry === undefined || !chosen.entry.result.ok) {
      return fail('peer_certificate_untrusted', `a CA bundle is configured but the ${chosen.peer.source} identity has no certificate to verify`);
    }
    const verified = verifyAgainstAnchors(chosen.entry.result.certificate, settings.anchors, nowMs, chosen.entry.issuer);
    if (!verified.ok) return verified;
    return { ok: true, peer: Object.freeze({ ...chosen.peer, caVerified: true }) };
  }
  return { ok: true, peer: chosen.peer };
}

type Step = { readonly ok: true; readonly resolved: Resolved } | MtlsFailure;

function resolveDirect(source: RequestView['source'], nowMs: number, lookup: CertificateLookup): { ok: true; resolved: Resolved | undefined } | MtlsFailure {
  const principal = source.principal;
  if (principal.length > MAX_PRINCIPAL_LENGTH || CONTROL.test(principal)) {
    return fail('request_malformed', 'source.principal is too long or contains control characters');
  }
  if (source.certificate !== '') {
    const entry = lookup(source.certificate);
    if (!entry.result.ok) return entry.result;
    const cert = entry.result.certificate;
    const validity = checkValidity(cert, nowMs);
    if (!validity.ok) return validity;
    const derived = envoyPrincipal(cert);
    if (principal !== '' && principal !== derived) {
      return fail(
        'peer_identity_conflict',
        `source.principal ${JSON.stringify(principal.slice(0, 256))} differs from the certificate's ${JSON.stringify(derived.slice(0, 256))}`,
      );
    }
    return { ok: true, resolved: { peer: fromCertificate('certificate', cert, undefined), entry } };
  }
  if (principal !== '') return { ok: true, resolved: { peer: fromPrincipal(principal), entry: undefined } };
  return { ok: true, resolved: undefined };
}

function resolveXfccElement(el: XfccElement, settings: PeerSettings, nowMs: number, lookup: CertificateLookup): Step {
  const limits = settings.certificateLimits;
  if (el.hash !== undefined && thumbprintFromHex(el.hash) === undefined) return fail('xfcc_malformed', 'Hash is not a hex SHA-256');
  if (el.uris.length + el.dns.length > limits.maxSans) return fail('xfcc_malformed', `more than ${limits.maxSans} URI/DNS entries`);
  for (const name of [...el.uris, ...el.dns]) {
    if (name === '' || name.length > limits.maxSanLength || !/^[\x21-\x7e]+$/.test(name)) {
      return fail('xfcc_malformed', 'a URI or DNS value is empty, too long or not printable ASCII');
    }
  }
  const subject = el.subject ?? '';
  if (subject.length > MAX_PRINCIPAL_LENGTH || CONTROL.test(subject)) return fail('xfcc_malformed', 'Subject is too long');

  if (el.cert !== undefined && el.cert !== '') {
    const entry = lookup(el.cert);
    if (!entry.result.ok) return entry.result;
    const cert = entry.result.certificate;
    if (el.hash !== undefined && el.hash.toLowerCase() !== cert.fingerprintSha256) {
      return fail('xfcc_untrusted', 'Hash does not match Cert');
    }
    const validity = checkValidity(cert, nowMs);
    if (!validity.ok) return validity;
    const strayUri = el.uris.find((u) => !cert.uriSans.includes(u));
    const strayDns = el.dns.find((d) => !cert.dnsSans.includes(d));
    if (strayUri !== undefined || strayDns !== undefined) {
      return fail('peer_identity_conflict', 'an XFCC URI/DNS value is not among the forwarded certificate\'s SANs');
    }
    return { ok: true, resolved: { peer: fromCertificate('xfcc', cert, el.by), entry } };
  }

  const principal = el.uris[0] ?? el.dns[0] ?? subject;
  if (principal === '') return fail('xfcc_malformed', 'the trusted element names no client identity');
  const fingerprint = el.hash?.toLowerCase();
  return {
    ok: true,
    resolved: {
      peer: Object.freeze({
        source: 'xfcc',
        principal,
        spiffeId: spiffeIdOf(el.uris),
        uriSans: Object.freeze([...el.uris]),
        dnsSans: Object.freeze([...el.dns]),
        subject,
        fingerprintSha256: fingerprint,
        thumbprintS256: fingerprint === undefined ? undefined : thumbprintFromHex(fingerprint),
        notBeforeMs: undefined,
        notAfterMs: undefined,
        caVerified: false,
        forwardedBy: el.by,
      }),
      entry: undefined,
    },
  };
}

function fromCertificate(source: 'certificate' | 'xfcc', cert: ParsedCertificate, forwardedBy: string | undefined): PeerIdentity {
  return Object.freeze({
    source,
    principal: envoyPrincipal(cert),
    spiffeId: spiffeIdOf(cert.uriSans),
    uriSans: cert.uriSans,
    dnsSans: cert.dnsSans,
    subject: cert.subject,
    fingerprintSha256: cert.fingerprintSha256,
    thumbprintS256: cert.thumbprintS256,
    notBeforeMs: cert.notBeforeMs,
    notAfterMs: cert.notAfterMs,
    caVerified: false,
    forwardedBy,
  });
}

/** Envoy's principal without a certificate: classified as URI SAN, DNS SAN or Subject by its form. */
function fromPrincipal(principal: string): PeerIdentity {
  const isUri = URI_SCHEME.test(principal);
  const isDns = !isUri && isDnsName(principal.toLowerCase());
  return Object.freeze({
    source: 'principal',
    principal,
    spiffeId: isUri ? spiffeIdOf([principal]) : undefined,
    uriSans: Object.freeze(isUri ? [principal] : []),
    dnsSans: Object.freeze(isDns ? [principal] : []),
    subject: isUri || isDns ? '' : principal,
    fingerprintSha256: undefined,
    thumbprintS256: undefined,
    notBeforeMs: undefined,
    notAfterMs: undefined,
    caVerified: false,
    forwardedBy: undefined,
  });
}

/**
 * The SPIFFE ID of an identity: its `spiffe://` URI SAN when there is exactly one and it is valid.
 * An X.509-SVID carries exactly one URI SAN; two SPIFFE IDs are ambiguous and match nothing.
 */
function spiffeIdOf(uris: readonly string[]): string | undefined {
  const ids = uris.filter((u) => u.startsWith('spiffe://'));
  if (ids.length !== 1) return undefined;
  const id = ids[0] as string;
  return parseSpiffeId(id) === undefined ? undefined : id;
}

/**
 * Flat, header- and metadata-safe description of a peer for dynamic metadata and audit records.
 * Keys are stable; absent values are omitted.
 */
export function peerMetadata(peer: PeerIdentity): Readonly<Record<string, string>> {
  const out: Record<string, string> = { peer_source: peer.source, peer_principal: peer.principal };
  if (peer.spiffeId !== undefined) out['peer_spiffe_id'] = peer.spiffeId;
  if (peer.fingerprintSha256 !== undefined) out['peer_fingerprint_sha256'] = peer.fingerprintSha256;
  if (peer.forwardedBy !== undefined) out['peer_forwarded_by'] = peer.forwardedBy;
  if (peer.caVerified) out['peer_ca_verified'] = 'true';
  return Object.freeze(out);
}
