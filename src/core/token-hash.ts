import { createHash } from 'node:crypto';

/**
 * base64url SHA-256 of a raw token: how a token is named in caches and audit records, so that
 * neither ever holds the token itself.
 */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
