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
  /** Entra's unique token id; used in audit records instead of the token itself. */
  readonly uti: string | undefined;
  /** SHA-256 of the raw token, base64url: lets an auditor match a token without storing it. */
  readonly tokenHash: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  /** RFC 8705 certificate binding (`cnf["x5t#S256"]`), when the token is bound. */
  readonly boundCertificateThumbprint: string | undefined;
}
