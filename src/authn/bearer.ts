import type { RequestView } from '../core/request.js';

/** `Bearer`, or Entra's `MTLS_POP` for certificate-bound tokens (RFC 8705), lower-cased. */
export type TokenScheme = 'bearer' | 'mtls_pop';

export type TokenExtraction =
  | { readonly kind: 'none' }
  | { readonly kind: 'token'; readonly token: string; readonly scheme: TokenScheme }
  | { readonly kind: 'invalid'; readonly reason: 'token_multiple' | 'token_malformed' | 'token_scheme_unsupported'; readonly detail: string };

// A JWS compact serialization: three base64url segments. Anything else is not worth parsing.
const CREDENTIAL = /^([A-Za-z0-9_-]+)[ ]+([A-Za-z0-9._~+/-]+=*)$/;
// RFC 9110 §11.1: an auth-scheme is a token, optionally followed by parameters or token68.
const SCHEME = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:[ ]|$)/;

/**
 * Reads the credential from the configured header. Envoy joins repeated headers with ',', and a
 * token never contains one, so a comma after a Bearer scheme means the client sent several
 * credentials: refused rather than guessing which one counts. Other schemes (whose parameters may
 * hold commas) are no bearer credential, whatever follows.
 */
export function extractToken(request: RequestView, headerName: string): TokenExtraction {
  const values = request.headers.get(headerName);
  if (values === undefined) return { kind: 'none' };
  if (values.length > 1) return { kind: 'invalid', reason: 'token_multiple', detail: `${values.length} ${headerName} headers` };
  const value = (values[0] ?? '').trim();
  if (value === '') return { kind: 'invalid', reason: 'token_malformed', detail: `empty ${headerName} header` };
  const scheme = (SCHEME.exec(value)?.[1] ?? '').toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'mtls_pop') {
    // Another scheme (Basic, Negotiate, …) is not a bad token but no bearer credential at all.
    if (scheme !== '') return { kind: 'invalid', reason: 'token_scheme_unsupported', detail: `scheme ${JSON.stringify(scheme.slice(0, 32))}` };
    return { kind: 'invalid', reason: 'token_malformed', detail: `${headerName} is not "<scheme> <credential>"` };
  }
  if (value.includes(',')) return { kind: 'invalid', reason: 'token_multiple', detail: `several credentials in one ${headerName} header` };
  const m = CREDENTIAL.exec(value);
  if (!m) return { kind: 'invalid', reason: 'token_malformed', detail: `${headerName} is not "<scheme> <credential>"` };
  return { kind: 'token', token: m[2] ?? '', scheme };
}
