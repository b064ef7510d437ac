import { describe, expect, it } from 'vitest';
import { REDACTED_JWT, redactJwts } from '../../src/core/redact.js';

const JWT = 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

describe('redactJwts', () => {
  it.each([
    [`/callback/${JWT}`, `/callback/${REDACTED_JWT}`],
    [`access_token=${JWT}&state=1`, `access_token=${REDACTED_JWT}&state=1`],
    [`Bearer ${JWT}`, `Bearer ${REDACTED_JWT}`],
    [`${JWT},${JWT}`, `${REDACTED_JWT},${REDACTED_JWT}`],
    ['a=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', `a=${REDACTED_JWT}`],
    ['jwe=eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d', `jwe=${REDACTED_JWT}`],
  ])('replaces a token in %s', (input, expected) => {
    expect(redactJwts(input)).toBe(expected);
  });

  it.each(['/orders/42', '/shop.v1.Orders/Get', 'a.b.c', '/eyJhbGciOiJub25lIn0', 'v=1.2.3'])('leaves %s alone', (input) => {
    expect(redactJwts(input)).toBe(input);
  });

  it('stays fast on hostile input with many token-like starts', () => {
    const hostile = 'eyJ'.repeat(100_000);
    const started = performance.now();
    expect(redactJwts(hostile)).toBe(hostile);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
