/**
 * The one table of stable reason codes. Every decision carries exactly one of these codes; the
 * code (never a library's message) is what callers, dashboards and audit records see.
 *
 * A code is part of the public contract: rename none, add freely. `docs/reason-codes.md` lists
 * them all and a test checks that the two agree.
 */

/** gRPC status codes used on CheckResponse.status (google.rpc.Code). */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

/** The RFC 6750 `error` attribute put in WWW-Authenticate, or none. */
export type BearerError = 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'insufficient_claims' | null;

export interface ReasonInfo {
  /** HTTP status Envoy answers the caller with (denied_response.status). */
  readonly httpStatus: number;
  /** google.rpc.Code on CheckResponse.status (any non-zero code is a deny to Envoy). */
  readonly grpcCode: GrpcCode;
  /** RFC 6750 error attribute; null means a bare `Bearer realm=...` challenge or none. */
  readonly bearerError: BearerError;
  /** Whether a WWW-Authenticate challenge is sent at all. */
  readonly challenge: boolean;
  /** Public, fixed text: safe to show to any caller (never derived from the token). */
  readonly message: string;
}

const deny401 = (bearerError: BearerError, message: string): ReasonInfo => ({
  httpStatus: 401,
  grpcCode: GrpcCode.UNAUTHENTICATED,
  bearerError,
  challenge: true,
  message,
});
const deny403 = (message: string): ReasonInfo => ({
  httpStatus: 403,
  grpcCode: GrpcCode.PERMISSION_DENIED,
  bearerError: 'insufficient_scope',
  challenge: true,
  message,
});

export const REASONS = {
  allowed: { httpStatus: 200, grpcCode: GrpcCode.OK, bearerError: null, challenge: false, message: 'allowed' },
  allowed_anonymous: {
    httpStatus: 200,
    grpcCode: GrpcCode.OK,
    bearerError: null,
    challenge: false,
    message: 'allowed without credentials by rule',
  },

  // The request itself.
  request_malformed: {
    httpStatus: 400,
    grpcCode: GrpcCode.INVALID_ARGUMENT,
    bearerError: null,
    challenge: false,
    message: 'the check request is malformed',
  },
  keys_unavailable: {
    httpStatus: 503,
    grpcCode: GrpcCode.UNAVAILABLE,
    bearerError: null,
    challenge: false,
    message: 'signing keys are unavailable',
  },
  internal_error: {
    httpStatus: 500,
    grpcCode: GrpcCode.INTERNAL,
    bearerError: null,
    challenge: false,
    message: 'authorization failed closed on an internal error',
  },

  // Token presence and shape.
  token_missing: deny401(null, 'an access token is required'),
  // RFC 6750 §3.1 pairs invalid_request with 400: a request that repeats its credential is malformed.
  token_multiple: {
    httpStatus: 400,
    grpcCode: GrpcCode.INVALID_ARGUMENT,
    bearerError: 'invalid_request',
    challenge: true,
    message: 'more than one credential was sent',
  },
  // Basic, Digest, Negotiate, …: no bearer credential at all, so a bare challenge (RFC 6750 §3.1),
  // as for a request without an Authorization header.
  token_scheme_unsupported: deny401(null, 'a Bearer access token is required'),
  token_malformed: deny401('invalid_token', 'the access token is malformed'),
  token_too_large: deny401('invalid_token', 'the access token is too large'),

  // Token validation.
  token_alg_not_allowed: deny401('invalid_token', 'the token signing algorithm is not allowed'),
  token_nonce_header: deny401('invalid_token', 'tokens with a nonce header cannot be verified'),
  token_key_unknown: deny401('invalid_token', 'the token signing key is unknown'),
  token_signature_invalid: deny401('invalid_token', 'the token signature is invalid'),
  token_expired: deny401('invalid_token', 'the token has expired'),
  token_not_yet_valid: deny401('invalid_token', 'the token is not yet valid'),
  // Longer than Entra issues (24 h, or 28 h for CAE when `entra.cae` is on): not an Entra token as configured.
  token_lifetime_too_long: deny401('invalid_token', 'the token lifetime is longer than accepted'),
  token_issuer_invalid: deny401('invalid_token', 'the token issuer is not accepted'),
  token_tenant_not_allowed: deny401('invalid_token', 'the token tenant is not allowed'),
  // Azure AD B2C: the token's `tfp`/`acr` names no configured user flow.
  token_user_flow_not_allowed: deny401('invalid_token', 'the token user flow is not accepted'),
  token_version_not_accepted: deny401('invalid_token', 'the token version is not accepted'),
  token_audience_invalid: deny401('invalid_token', 'the token audience is not accepted'),
  token_claims_invalid: deny401('invalid_token', 'the token lacks required claims'),
  // Microsoft.Identity.Web fails authentication for such tokens (an app of a tenant that never
  // consented can get one): an invalid token, not a missing permission.
  token_no_permissions: deny401('invalid_token', 'the token carries neither roles nor scopes'),

  // Authorization.
  no_matching_rule: deny403('no rule grants access to this route'),
  missing_role: deny403('the token lacks a required app role'),
  missing_scope: deny403('the token lacks a required scope'),

  // Rules.
  path_not_canonical: {
    httpStatus: 400,
    grpcCode: GrpcCode.INVALID_ARGUMENT,
    bearerError: null,
    challenge: false,
    message: 'the request path is not in canonical form',
  },
  app_not_allowed: deny403('the calling application is not allowed on this route'),
  tenant_denied_by_rule: deny403('the token tenant is not allowed on this route'),
  token_type_not_allowed: deny403('this kind of token is not allowed on this route'),
  missing_group: deny403('the caller is not a member of a required group'),
  // Too many groups for the token to carry, and membership was not looked up elsewhere.
  group_overage_unresolved: deny403('group membership could not be determined from the token'),
  // Microsoft Graph could not say (down, throttled, timed out): never read as "not a member".
  group_lookup_failed: {
    httpStatus: 503,
    grpcCode: GrpcCode.UNAVAILABLE,
    bearerError: null,
    challenge: false,
    message: 'group membership could not be looked up',
  },
  missing_directory_role: deny403('the caller lacks a required directory role'),
  client_authentication_too_weak: deny403('the calling application did not authenticate strongly enough'),
  mfa_required: deny403('multi-factor authentication is required'),
  authentication_context_required: deny403('a conditional access authentication context is required'),
  // Microsoft's claims challenge, only to clients that declared they handle one (`xms_cc` has `cp1`):
  // the challenge carries the claims to request in a new token (see docs/entra.md).
  step_up_required: deny401('insufficient_claims', 'a token with further claims is required'),
  // Peer requirements of rules use the mTLS codes below (peer_missing, peer_not_allowed, token_*bound*).

  // Peer identity (mTLS). A 401 always carries a challenge (RFC 7235); certificate problems have no
  // RFC 6750 error of their own, so theirs is the bare `Bearer realm=...` one.
  peer_certificate_malformed: deny401(null, 'the client certificate is malformed'),
  peer_certificate_expired: deny401(null, 'the client certificate has expired'),
  peer_certificate_not_yet_valid: deny401(null, 'the client certificate is not yet valid'),
  peer_certificate_untrusted: deny401(null, 'the client certificate is not issued by a trusted authority'),
  peer_identity_conflict: deny401(null, 'the client identity sources disagree'),
  peer_missing: deny401(null, 'a client certificate identity is required'),
  peer_not_allowed: deny403('the client identity is not allowed'),
  xfcc_malformed: deny401(null, 'the forwarded client certificate header is malformed'),
  xfcc_untrusted: deny401(null, 'the forwarded client certificate header is not trusted'),
  // RFC 8705 §3: a binding failure is an invalid_token (401).
  token_binding_mismatch: deny401('invalid_token', 'the token is bound to a different client certificate'),
  token_binding_no_certificate: deny401('invalid_token', 'the token is certificate-bound but no client certificate was presented'),
  token_not_bound: deny401('invalid_token', 'a certificate-bound token is required'),
} as const satisfies Record<string, ReasonInfo>;

export type ReasonCode = keyof typeof REASONS;

/**
 * Codes on which the RPC itself fails with UNAVAILABLE (Envoy's failure_mode_allow then decides);
 * every other code is a CheckResponse.
 */
export const RPC_FAILURE_REASONS: ReadonlySet<ReasonCode> = new Set<ReasonCode>(['keys_unavailable']);

/** Codes that stand for an allow; all others deny. */
export const ALLOW_REASONS: ReadonlySet<ReasonCode> = new Set<ReasonCode>(['allowed', 'allowed_anonymous']);

export function reasonInfo(code: ReasonCode): ReasonInfo {
  return REASONS[code];
}
