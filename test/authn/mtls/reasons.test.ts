import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REASONS, type ReasonCode } from '../../../src/core/reasons.js';

const PEER_CODES = {
  peer_certificate_malformed: 401,
  peer_certificate_expired: 401,
  peer_certificate_not_yet_valid: 401,
  peer_certificate_untrusted: 401,
  peer_identity_conflict: 401,
  peer_missing: 401,
  peer_not_allowed: 403,
  xfcc_malformed: 401,
  xfcc_untrusted: 401,
  token_binding_mismatch: 401,
  token_binding_no_certificate: 401,
  token_not_bound: 401,
} as const satisfies Partial<Record<ReasonCode, number>>;

describe('mTLS reason codes', () => {
  it('are in the reason table with the documented HTTP status and matching gRPC code', () => {
    for (const [code, status] of Object.entries(PEER_CODES)) {
      const info = REASONS[code as ReasonCode];
      expect(info.httpStatus, code).toBe(status);
      expect(info.grpcCode, code).toBe(status === 401 ? 16 : 7);
    }
  });

  it('use invalid_token for binding failures (RFC 8705 §3) and a bare challenge for certificate failures', () => {
    expect(REASONS.token_binding_mismatch).toMatchObject({ bearerError: 'invalid_token', challenge: true });
    expect(REASONS.peer_certificate_expired).toMatchObject({ bearerError: null, challenge: true });
    expect(REASONS.peer_not_allowed).toMatchObject({ bearerError: 'insufficient_scope', challenge: true });
  });

  it('are all documented in docs/mtls.md with their status', () => {
    const doc = readFileSync(new URL('../../../docs/mtls.md', import.meta.url), 'utf8');
    for (const [code, status] of Object.entries(PEER_CODES)) {
      expect(doc, code).toMatch(new RegExp(`\\| \`${code}\` \\| ${status} \\|`));
    }
  });
});
