/**
 * Certificate-bound access tokens (RFC 8705 §3). A token whose `cnf` claim carries `x5t#S256` is
 * accepted only from a caller presenting that very certificate. The check never fails open: a bound
 * token with no known peer certificate is refused, whatever the rule says.
 */
import { timingSafeEqual } from 'node:crypto';
import type { TokenIdentity } from '../../core/identity.js';
import type { TokenScheme } from '../bearer.js';
import { fail, type MtlsFailure, type PeerIdentity } from './types.js';

export interface BindingOptions {
  /** The rule demands a bound token (`requireBoundToken`). */
  readonly requireBound?: boolean;
  /** The scheme the token came with; `mtls_pop` implies a bound token. */
  readonly scheme?: TokenScheme;
}

export type BindingResult = { readonly ok: true; readonly bound: boolean } | MtlsFailure;

/**
 * Checks a verified token's certificate binding against the peer.
 * - No token: nothing to bind (`bound: false`); whether a token was needed is the rule's business.
 * - Bound token: the peer's `x5t#S256` thumbprint must equal `cnf["x5t#S256"]`; no peer
 *   certificate → `token_binding_no_certificate`, a different one → `token_binding_mismatch`.
 * - Unbound token: refused with `token_not_bound` when the rule or the MTLS_POP scheme demands
 *   binding; otherwise fine.
 */
export function checkTokenBinding(
  identity: Pick<TokenIdentity, 'boundCertificateThumbprint'> | undefined,
  peer: PeerIdentity | undefined,
  options: BindingOptions = {},
): BindingResult {
  if (identity === undefined) return { ok: true, bound: false };
  const expected = identity.boundCertificateThumbprint;
  if (expected === undefined || expected === '') {
    if (options.requireBound) return fail('token_not_bound', 'the rule requires a certificate-bound token');
    if (options.scheme === 'mtls_pop') return fail('token_not_bound', 'an MTLS_POP token without a cnf x5t#S256 claim');
    return { ok: true, bound: false };
  }
  const actual = peer?.thumbprintS256;
  if (actual === undefined) {
    return fail('token_binding_no_certificate', `the token is bound to a certificate but ${peer === undefined ? 'no peer identity' : 'no peer certificate'} is known`);
  }
  const a = Buffer.from(actual, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    return fail('token_binding_mismatch', `the token is bound to x5t#S256 ${expected.slice(0, 64)}, the peer presented ${actual}`);
  }
  return { ok: true, bound: true };
}
