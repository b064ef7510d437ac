import type { TokenIdentity } from './identity.js';
import type { MaybePromise } from './maybe-async.js';
import type { ReasonCode } from './reasons.js';

/** What verifying one token gave: the identity, or a reason code with an audit-only detail. */
export type VerifyResult =
  | { readonly ok: true; readonly identity: TokenIdentity; readonly cacheHit?: boolean }
  | { readonly ok: false; readonly reason: ReasonCode; readonly detail: string; readonly cacheHit?: boolean };

/**
 * Verifies a raw compact JWS access token. Never throws; every failure is a reason code.
 * Implemented by authn/entra, wrapped by the verified-token cache (which sets `cacheHit`).
 */
export interface TokenVerifier {
  /** At once for a verification still held (the verified-token cache), else when it is done. */
  verify(token: string): MaybePromise<VerifyResult>;
}
