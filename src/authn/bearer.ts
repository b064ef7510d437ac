import type { RequestView } from '../core/request.js';

/** `Bearer`, or Entra's `MTLS_POP` for certificate-bound tokens (RFC 8705), lower-cased. */
export type TokenScheme = 'bearer' | 'mtls_pop';

export type TokenExtraction =
  | { readonly kind: 'none' }
  | { readonly kind: 'token'; readonly token: string; readonly scheme: TokenScheme }
  | { readonly kind: 'invalid'; readonly reason: 'token_multiple' | 'token_malformed'; readonly detail: string };

// A JWS compact serialization: three base64url segments. Anything else is not worth parsing.
const CREDENTIAL = /^([A-Za-z0-9_-]+)[ ]+([A-Za-z0-9._~+/-]+=*)$/;

/**
 * Reads the credential from the configured header. Envoy joins repeated headers with ',', and a
 * token never contains one, so a comma means the client sent several credentials: refused rather
 * than guessing which one counts.
 */
export function extractToken(request: RequestView, headerName: string): TokenExtraction {
  const values = request.headers.get(headerName);
  if (values === undefined) return { kind: 'none' };
  if (values.length > 1) return { kind: 'invalid', reason: 'token_multiple', detail: `${values.length} ${headerName} headers` };
  const value = (values[0] ?? '').trim();
  if (value === '') return { kind: 'invalid', reason: 'token_malformed', detail: `empty ${headerName} header` };
  if (value.includes(',')) return { kind: 'invalid', reason: 'token_multiple', detail: `several credentials in one ${headerName} header` };
  const m = CREDENTIAL.exec(value);
  if (!m) return { kind: 'invalid', reason: 'token_malformed', detail: `${headerName} is not "<scheme> <credential>"` };
  const scheme = (m[1] ?? '').toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'mtls_pop') {
    return { kind: 'invalid', reason: 'token_malformed', detail: `unsupported scheme ${JSON.stringify(scheme.slice(0, 32))}` };
  }
  return { kind: 'token', token: m[2] ?? '', scheme };
}
