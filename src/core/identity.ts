/**
 * Who the caller is, once its credentials have been verified. Pure data, shared by the policy,
 * the response builder and the audit record.
 */

/** The caller as described by a verified Entra ID access token. */
export interface TokenIdentity {
  /** Token format: issuer form `https://sts.windows.net/{tid}/` is 1.0, `.../{tid}/v2.0` is 2.0. */
  readonly version: '1.0' | '2.0';
  /** `app` for app-only tokens (client credentials, managed identity), `user` for delegated ones. */
  readonly type: 'app' | 'user';
  /** Object id of the caller (user, service principal or managed identity). */
  readonly oid: string;
  readonly sub: string;
  /** Tenant GUID. */
  readonly tid: string;
  /** Client id of the calling application (`appid` in v1, `azp` in v2). */
  readonly appId: string;
  /** How the calling app authenticated: 0 public client, 1 secret, 2 certificate (`appidacr`/`azpacr`). */
  readonly appAuth: string | undefined;
  readonly issuer: string;
  readonly audience: string;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
  /** Security group object ids (`groups`), lower-case; empty when the token carries none. */
  readonly groups: readonly string[];
  /**
   * The caller has more groups than a token carries (`_claim_names.groups` or `hasgroups`), so
   * `groups` is empty and says nothing about membership.
   */
  readonly groupsOverage: boolean;
  /** Directory role template ids (`wids`), lower-case. */
  readonly directoryRoles: readonly string[];
  /** How the user signed in (`amr`, e.g. `pwd`, `mfa`); Entra puts it in v1.0 access tokens. */
  readonly authMethods: readonly string[];
  /** Conditional Access authentication contexts the token satisfies (`acrs`, e.g. `c1`). */
  readonly authContexts: readonly string[];
  /** The client declared it can handle claims challenges (`xms_cc` contains `cp1`). */
  readonly claimsChallengeCapable: boolean;
  /** Entra's unique token id; used in audit records instead of the token itself. */
  readonly uti: string | undefined;
  /** SHA-256 of the raw token, base64url: lets an auditor match a token without storing it. */
  readonly tokenHash: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  /** RFC 8705 certificate binding (`cnf["x5t#S256"]`), when the token is bound. */
  readonly boundCertificateThumbprint: string | undefined;
}

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
