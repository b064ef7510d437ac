import * as crypto from 'node:crypto';

type OneShotHash = (algorithm: string, data: string, outputEncoding: 'base64url') => string;
// crypto.hash (Node ≥ 20.12) hashes in one call, without a Hash object per token.
const oneShot = (crypto as unknown as { hash?: OneShotHash }).hash;

/**
 * base64url SHA-256 of a raw token: how a token is named in caches and audit records, so that
 * neither ever holds the token itself.
 */
export function tokenHash(token: string): string {
  return oneShot ? oneShot('sha256', token, 'base64url') : crypto.createHash('sha256').update(token).digest('base64url');
}
