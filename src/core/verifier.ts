import type { TokenIdentity } from './identity.js';
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
  verify(token: string): Promise<VerifyResult>;
  /**
   * The result for a token whose verification is still held (the verified-token cache), without
   * waiting; undefined when it would take a verification.
   */
  cached?(token: string): VerifyResult | undefined;
}
