import { describe, expect, it } from 'vitest';
import { createCachingVerifier } from '../../src/cache/token-cache.js';
import type { TokenIdentity } from '../../src/core/identity.js';
import { tokenIdentity } from '../fixtures/identity.js';
import type { TokenVerifier, VerifyResult } from '../../src/core/verifier.js';

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);

const identity = (expiresAt: number): TokenIdentity => tokenIdentity({ expiresAt });

/** A verifier that counts calls and answers from a table. */
function countingVerifier(answers: Record<string, VerifyResult>): TokenVerifier & { calls: number } {
  const v = {
    calls: 0,
    async verify(token: string): Promise<VerifyResult> {
      v.calls++;
      return answers[token] ?? { ok: false, reason: 'token_malformed', detail: 'unknown' };
    },
  };
  return v;
}

describe('verified-token cache', () => {
  const settings = { maxEntries: 100, ttlSeconds: 300, clockSkewSeconds: 60 };

  it('verifies a token once and then answers from the cache', async () => {
    let now = T0;
    const inner = countingVerifier({ tok: { ok: true, identity: identity(T0 / 1000 + 3600) } });
    const cached = createCachingVerifier(inner, settings, () => now);
    expect(await cached.verify('tok')).toMatchObject({ ok: true, cacheHit: false });
    now += 1000;
    expect(await cached.verify('tok')).toMatchObject({ ok: true, cacheHit: true });
    expect(inner.calls).toBe(1);
  });

  it('answers a held token at once, and a token never verified, failed or past its time only after verifying it', async () => {
    let now = T0;
    const inner = countingVerifier({ tok: { ok: true, identity: identity(T0 / 1000 + 3600) } });
    const cached = createCachingVerifier(inner, settings, () => now);
    expect(cached.verify('tok')).toBeInstanceOf(Promise);
    await cached.verify('tok');
    expect(cached.verify('tok')).toMatchObject({ ok: true, cacheHit: true });
    expect(cached.verify('bad')).toBeInstanceOf(Promise);
    expect(await cached.verify('bad')).toMatchObject({ ok: false, cacheHit: false });
    now += 301_000;
    expect(cached.verify('tok')).toBeInstanceOf(Promise);
    // The unawaited first calls and the ones right after them shared one verification each.
    expect(inner.calls).toBe(3);
  });

  it('re-verifies once the TTL has passed', async () => {
    let now = T0;
    const inner = countingVerifier({ tok: { ok: true, identity: identity(T0 / 1000 + 3600) } });
    const cached = createCachingVerifier(inner, settings, () => now);
    await cached.verify('tok');
    now += 301_000;
    expect(await cached.verify('tok')).toMatchObject({ cacheHit: false });
    expect(inner.calls).toBe(2);
  });

  it('never serves a token past its expiry plus skew', async () => {
    let now = T0;
    const answers: Record<string, VerifyResult> = { tok: { ok: true, identity: identity(T0 / 1000 + 10) } };
    const inner = countingVerifier(answers);
    const cached = createCachingVerifier(inner, settings, () => now);
    await cached.verify('tok');
    now += 69_000; // exp + 59 s: within the skew
    expect(await cached.verify('tok')).toMatchObject({ ok: true, cacheHit: true });
    now += 2_000; // exp + 61 s: past it, the verifier decides again
    answers['tok'] = { ok: false, reason: 'token_expired', detail: 'expired' };
    expect(await cached.verify('tok')).toMatchObject({ ok: false, reason: 'token_expired' });
  });

  it('does not remember failures', async () => {
    const inner = countingVerifier({});
    const cached = createCachingVerifier(inner, settings, () => T0);
    await cached.verify('bad');
    await cached.verify('bad');
    expect(inner.calls).toBe(2);
  });

  it('is off with maxEntries 0', async () => {
    const inner = countingVerifier({ tok: { ok: true, identity: identity(T0 / 1000 + 3600) } });
    const cached = createCachingVerifier(inner, { ...settings, maxEntries: 0 }, () => T0);
    await cached.verify('tok');
    await cached.verify('tok');
    expect(inner.calls).toBe(2);
  });
});

describe('verifications of the same new token arriving together', () => {
  const settings = { maxEntries: 100, ttlSeconds: 300, clockSkewSeconds: 60 };

  /** A verifier whose answers wait until `release()` is called. */
  function gatedVerifier(result: VerifyResult): TokenVerifier & { calls: number; release(): void } {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const v = {
      calls: 0,
      release: () => open(),
      async verify(): Promise<VerifyResult> {
        v.calls++;
        await gate;
        return result;
      },
    };
    return v;
  }

  it('share one verification and all get its answer', async () => {
    const inner = gatedVerifier({ ok: true, identity: identity(T0 / 1000 + 3600) });
    const cached = createCachingVerifier(inner, settings, () => T0);
    const answers = Promise.all([cached.verify('tok'), cached.verify('tok'), cached.verify('tok')]);
    inner.release();
    const results = await answers;
    expect(inner.calls).toBe(1);
    const expected = identity(T0 / 1000 + 3600);
    for (const r of results) expect(r).toMatchObject({ ok: true, cacheHit: false, identity: { oid: expected.oid } });
  });

  it('share a failed verification too, and the next check verifies again', async () => {
    const inner = gatedVerifier({ ok: false, reason: 'token_signature_invalid', detail: 'bad' });
    const cached = createCachingVerifier(inner, settings, () => T0);
    const answers = Promise.all([cached.verify('tok'), cached.verify('tok')]);
    inner.release();
    for (const r of await answers) expect(r).toMatchObject({ ok: false, reason: 'token_signature_invalid' });
    expect(inner.calls).toBe(1);
    await cached.verify('tok');
    expect(inner.calls).toBe(2);
  });

  it('are not shared between different tokens', async () => {
    const inner = gatedVerifier({ ok: true, identity: identity(T0 / 1000 + 3600) });
    const cached = createCachingVerifier(inner, settings, () => T0);
    const answers = Promise.all([cached.verify('one'), cached.verify('two')]);
    inner.release();
    await answers;
    expect(inner.calls).toBe(2);
  });
});
