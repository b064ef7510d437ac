import { describe, expect, it } from 'vitest';
import { extractToken } from '../../src/authn/bearer.js';
import { normalizeCheckRequest, type RequestView } from '../../src/core/request.js';
import { envoyCheckRequest } from '../../src/cli/check.js';

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

function view(headers: Record<string, string>): RequestView {
  const r = normalizeCheckRequest(envoyCheckRequest({ headers }));
  if (!r.ok) throw new Error(r.detail);
  return r.request;
}

describe('extractToken', () => {
  it('reads a Bearer token with any casing of the scheme', () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      expect(extractToken(view({ authorization: `${scheme} ${JWT}` }), 'authorization')).toEqual({ kind: 'token', token: JWT, scheme: 'bearer' });
    }
  });

  it('accepts the MTLS_POP scheme for certificate-bound tokens', () => {
    expect(extractToken(view({ authorization: `MTLS_POP ${JWT}` }), 'authorization')).toMatchObject({ kind: 'token', scheme: 'mtls_pop' });
  });

  it('reads the token from a configured header name', () => {
    expect(extractToken(view({ 'x-api-token': `Bearer ${JWT}` }), 'x-api-token')).toMatchObject({ kind: 'token', token: JWT });
  });

  it('reports no token when the header is absent', () => {
    expect(extractToken(view({}), 'authorization')).toEqual({ kind: 'none' });
  });

  it.each([
    ['an empty value', ''],
    ['a scheme without a credential', 'Bearer'],
    ['a credential with spaces', `Bearer ${JWT} extra`],
    ['control characters', `Bearer ${JWT}\u0000`],
  ])('refuses %s as malformed', (_name, value) => {
    expect(extractToken(view({ authorization: value }), 'authorization')).toMatchObject({ kind: 'invalid', reason: 'token_malformed' });
  });

  it.each([
    ['Basic credentials', 'Basic dXNlcjpwYXNz'],
    ['Negotiate', 'Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXagMDAu'],
    ['Digest parameters', 'Digest username="u", realm="r", nonce="n", response="x"'],
    ['a bare scheme name', 'Basic'],
    ['another token scheme', `PoP ${JWT}`],
  ])('reports %s as an unsupported scheme, not as a bad token', (_name, value) => {
    expect(extractToken(view({ authorization: value }), 'authorization')).toMatchObject({ kind: 'invalid', reason: 'token_scheme_unsupported' });
  });

  it('refuses several credentials joined by Envoy with a comma', () => {
    expect(extractToken(view({ authorization: `Bearer ${JWT},Bearer ${JWT}` }), 'authorization')).toMatchObject({
      kind: 'invalid',
      reason: 'token_multiple',
    });
  });
});
