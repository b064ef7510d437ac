/**
 * Redaction of JWT-shaped substrings in strings that reach a log: a client can put a token
 * anywhere (the path, the query, a header), and an audited path must not leak it. Pure: no imports.
 */

/** What a redacted token is replaced with. */
export const REDACTED_JWT = '[redacted-jwt]';

/**
 * A JWS or JWE in compact form: a base64url JSON header (`{"` encodes to `eyJ`), then one to four
 * more dot-separated base64url segments. The header alone (no dot) is no credential. It must start
 * a run of base64url characters: that keeps the scan linear on hostile input such as `eyJeyJeyJ…`.
 */
const JWT_SHAPED = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){1,4}/g;

/** The string with every JWT-shaped substring replaced by `[redacted-jwt]`. */
export function redactJwts(value: string): string {
  // Fast path: most strings hold no `eyJ` at all.
  return value.includes('eyJ') ? value.replace(JWT_SHAPED, REDACTED_JWT) : value;
}
