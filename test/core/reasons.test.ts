import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GrpcCode, REASONS, type ReasonCode } from '../../src/core/reasons.js';
import { reasonTableMarkdown } from '../../src/core/reason-table.js';

describe('reason codes', () => {
  it('are all documented in docs/reason-codes.md with their current status', () => {
    const doc = readFileSync(new URL('../../docs/reason-codes.md', import.meta.url), 'utf8');
    expect(doc).toContain(reasonTableMarkdown());
  });

  it('map 401s to UNAUTHENTICATED and 403s to PERMISSION_DENIED with a challenge', () => {
    for (const code of Object.keys(REASONS) as ReasonCode[]) {
      const r = REASONS[code];
      if (r.httpStatus === 401) expect([code, r.grpcCode, r.challenge]).toEqual([code, GrpcCode.UNAUTHENTICATED, true]);
      if (r.httpStatus === 403) expect([code, r.grpcCode, r.bearerError]).toEqual([code, GrpcCode.PERMISSION_DENIED, 'insufficient_scope']);
    }
  });

  it('pair error="invalid_request" with 400 only, as RFC 6750 §3.1 does', () => {
    for (const code of Object.keys(REASONS) as ReasonCode[]) {
      const r = REASONS[code];
      if (r.bearerError === 'invalid_request') expect([code, r.httpStatus, r.grpcCode]).toEqual([code, 400, GrpcCode.INVALID_ARGUMENT]);
    }
    expect(REASONS.token_multiple.httpStatus).toBe(400);
  });

  it('answer a request without bearer credentials with a bare challenge, whatever other scheme it used', () => {
    expect(REASONS.token_scheme_unsupported).toMatchObject({ httpStatus: 401, challenge: true, bearerError: null });
  });

  it('treat a token with neither roles nor scopes as a failed authentication (401 invalid_token)', () => {
    expect(REASONS.token_no_permissions).toMatchObject({ httpStatus: 401, bearerError: 'invalid_token' });
  });

  it('allow only with gRPC OK', () => {
    const allows = (Object.keys(REASONS) as ReasonCode[]).filter((c) => REASONS[c].grpcCode === GrpcCode.OK);
    expect(allows.sort()).toEqual(['allowed', 'allowed_anonymous']);
  });
});
