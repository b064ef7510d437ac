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

  it('allow only with gRPC OK', () => {
    const allows = (Object.keys(REASONS) as ReasonCode[]).filter((c) => REASONS[c].grpcCode === GrpcCode.OK);
    expect(allows.sort()).toEqual(['allowed', 'allowed_anonymous']);
  });
});
