import type { ReasonCode } from '../../core/reasons.js';

/**
 * The caller's transport identity, once resolved from Envoy's CheckRequest (principal, peer
 * certificate) or a trusted `x-forwarded-client-cert` element. Pure data: shared by the policy
 * (peer requirements, token binding), the response builder (identity headers, dynamic metadata)
 * and the audit record. Every string is printable ASCII, safe to put in a header.
 */
export interface PeerIdentity {
  /** Where the identity came from (see docs/mtls.md for the precedence). */
  readonly source: 'certificate' | 'principal' | 'xfcc';
  /** Envoy-style principal: first URI SAN, else first DNS SAN, else the Subject (RFC 2253 order). */
  readonly principal: string;
  /** The SPIFFE ID: the single `spiffe://` URI SAN when the identity has exactly one valid one. */
  readonly spiffeId: string | undefined;
  /** URI SANs in certificate order (at most the configured cap). */
  readonly uriSans: readonly string[];
  /** DNS SANs in certificate order. */
  readonly dnsSans: readonly string[];
  /** Subject in RFC 2253 order (`CN=a,O=b`), or '' when unknown. */
  readonly subject: string;
  /** Lower-case hex SHA-256 of the certificate's DER (XFCC `Hash` form), when a certificate or hash is known. */
  readonly fingerprintSha256: string | undefined;
  /** RFC 8705 `x5t#S256`: base64url(SHA-256(DER)), when a certificate or hash is known. */
  readonly thumbprintS256: string | undefined;
  /** Validity window in ms since the epoch, when a certificate was parsed. */
  readonly notBeforeMs: number | undefined;
  readonly notAfterMs: number | undefined;
  /** True when the certificate was verified against the configured CA bundle. */
  readonly caVerified: boolean;
  /** For `source: 'xfcc'`: the `By` URI of the proxy whose element was used. */
  readonly forwardedBy: string | undefined;
}

/** A refusal with a stable reason code and an audit-only detail (never sent to the caller). */
export interface MtlsFailure {
  readonly ok: false;
  readonly reason: ReasonCode;
  readonly detail: string;
}

export const fail = (reason: ReasonCode, detail: string): MtlsFailure => ({ ok: false, reason, detail });
