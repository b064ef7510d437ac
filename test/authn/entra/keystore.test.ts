import { beforeAll, describe, expect, it } from 'vitest';
import { createKeyStore, type KeyStoreDeps, type KeyStoreLogEvent } from '../../../src/authn/entra/keystore.js';
import { createTokenVerifier } from '../../../src/authn/entra/verifier.js';
import {
  AUTHORITY,
  createFakeEntra,
  createFakeTime,
  entraConfig,
  makeKeys,
  signToken,
  TENANT_A,
  TENANT_B,
  v1Issuer,
  v2Issuer,
  v2UserClaims,
  type TestKey,
} from './fixtures.js';

let keyA: TestKey;
let keyA2: TestKey;
let keyB: TestKey;
let stranger: TestKey;

beforeAll(async () => {
  [keyA, keyA2, keyB, stranger] = await makeKeys('kid-a-1', 'kid-a-2', 'kid-b-1', 'kid-stranger');
});

function setup(overrides: Parameters<typeof entraConfig>[0] = {}, deps: Partial<KeyStoreDeps> = {}) {
  const entra = createFakeEntra();
  entra.publish(TENANT_A, [keyA]);
  entra.publish(TENANT_B, [keyB]);
  const time = createFakeTime();
  const config = entraConfig(overrides);
  const logs: KeyStoreLogEvent[] = [];
  const fetches: string[] = [];
  const keys = createKeyStore({
    config,
    fetch: entra.fetch,
    now: time.now,
    schedule: time.schedule,
    random: () => 0.5,
    log: (e) => logs.push(e),
    onFetch: (kind, result) => fetches.push(`${kind}:${result}`),
    ...deps,
  });
  const verifier = createTokenVerifier({ config, keys, now: time.now });
  const jwksA2 = entra.jwksUrl(TENANT_A, '2.0');
  return { entra, time, config, keys, verifier, logs, fetches, jwksA2 };
}

describe('key store', () => {
  it('loads one key set per tenant and version with the exact issuer from the metadata', async () => {
    const s = setup();
    await s.keys.start();
    expect(s.keys.expectedIssuer(TENANT_A, '2.0')).toBe(v2Issuer(TENANT_A)); // `{tenantid}` substituted
    expect(s.keys.expectedIssuer(TENANT_A, '1.0')).toBe(v1Issuer(TENANT_A));
    expect(s.keys.expectedIssuer(TENANT_B, '2.0')).toBe(v2Issuer(TENANT_B));
    const stats = s.keys.stats();
    expect(stats).toHaveLength(4);
    for (const set of stats) {
      expect(set).toMatchObject({ keyCount: 1, consecutiveFailures: 0, fetches: { discovery: { ok: 1, error: 0 }, jwks: { ok: 1, error: 0 } } });
      expect(set.lastSuccessAt).toBe(s.time.now());
    }
    expect(s.fetches.filter((f) => f === 'jwks:ok')).toHaveLength(4);
    s.keys.stop();
  });

  it('flips readiness once every set has loaded, retrying failed sets in the background', async () => {
    const s = setup();
    const changes: boolean[] = [];
    s.keys.onReadyChange((r) => changes.push(r));
    s.entra.override(s.entra.metadataUrl(TENANT_B, '1.0'), () => new Response('busy', { status: 503 }));
    await s.keys.start(); // does not throw although one set failed
    expect(s.keys.isReady()).toBe(false);
    expect(changes).toEqual([]);

    await s.time.advance(1000); // first retry, still failing
    expect(s.keys.isReady()).toBe(false);
    s.entra.clearOverrides();
    await s.time.advance(2000); // second retry after backoff
    expect(s.keys.isReady()).toBe(true);
    expect(changes).toEqual([true]);
    s.keys.stop();
    expect(s.time.pendingTimers()).toBe(0);
  });

  it('accepts a rotated-in key after refreshing on its unknown kid', async () => {
    const s = setup();
    await s.keys.start();
    const token = await signToken(keyA2, v2UserClaims(s.time.now()));
    s.entra.publish(TENANT_A, [keyA, keyA2]); // Entra rotates a new key in
    const result = await s.verifier.verify(token);
    expect(result.ok).toBe(true);
    expect(s.entra.count(s.jwksA2)).toBe(2);
    // The new key is now cached: no further fetch.
    expect((await s.verifier.verify(token)).ok).toBe(true);
    expect(s.entra.count(s.jwksA2)).toBe(2);
  });

  it('refreshes on a flood of unknown kids at most once per cooldown, sharing one fetch', async () => {
    const s = setup({ keys: { unknownKidCooldownSeconds: 300 } });
    await s.keys.start();
    expect(s.entra.count(s.jwksA2)).toBe(1);
    const forged = await Promise.all(
      Array.from({ length: 100 }, (_, i) => signToken(stranger, v2UserClaims(s.time.now()), { kid: `made-up-${i}` })),
    );

    const first = await Promise.all(forged.map((t) => s.verifier.verify(t)));
    expect(first.every((r) => !r.ok && r.reason === 'token_key_unknown')).toBe(true);
    expect(s.entra.count(s.jwksA2)).toBe(2); // one shared fetch for all 100

    await s.time.advance(299_000);
    await Promise.all(forged.map((t) => s.verifier.verify(t)));
    expect(s.entra.count(s.jwksA2)).toBe(2); // within the cooldown: none

    await s.time.advance(1000);
    const after = await Promise.all(forged.map((t) => s.verifier.verify(t)));
    expect(after.every((r) => !r.ok && r.reason === 'token_key_unknown')).toBe(true);
    expect(s.entra.count(s.jwksA2)).toBe(3); // cooldown over: exactly one more
    expect(s.entra.count(s.entra.metadataUrl(TENANT_A, '2.0'))).toBe(1); // an unknown kid re-reads only the JWKS
    s.keys.stop();
  });

  it('keeps the last known good keys when a refresh fails', async () => {
    const s = setup({ keys: { refreshIntervalSeconds: 600 } });
    await s.keys.start();
    const good = await signToken(keyA, v2UserClaims(s.time.now()));
    s.entra.setDown(true);

    await s.time.advance(600_000); // scheduled refresh fails
    const statsA = s.keys.stats().find((x) => x.tenant === TENANT_A && x.version === '2.0');
    expect(statsA).toMatchObject({ keyCount: 1, consecutiveFailures: 1, lastSuccessAt: s.time.now() - 600_000 });
    expect(s.fetches).toContain('discovery:error');
    expect(s.keys.isReady()).toBe(true);
    expect((await s.verifier.verify(good)).ok).toBe(true);
    expect(s.logs.some((l) => l.level === 'warn' && /keeping last known good/.test(l.msg))).toBe(true);

    // An unknown kid while Entra is down is still a deny, not "unavailable" (which may fail open).
    const unknown = await s.verifier.verify(await signToken(stranger, v2UserClaims(s.time.now())));
    expect(unknown.ok || unknown.reason).toBe('token_key_unknown');
    s.keys.stop();
  });

  it('treats garbage documents as failed fetches and keeps the last known good keys', async () => {
    const s = setup();
    await s.keys.start();
    const token = await signToken(keyA, v2UserClaims(s.time.now(), { exp: Math.floor(s.time.now() / 1000) + 86_400 }));
    const metaA2 = s.entra.metadataUrl(TENANT_A, '2.0');
    const garbage: Array<[string, () => Response]> = [
      [metaA2, () => new Response('<html>oops</html>', { status: 200 })],
      [metaA2, () => Response.json({ issuer: 42, jwks_uri: s.jwksA2 })],
      [metaA2, () => Response.json({ issuer: `${AUTHORITY}/common/v2.0`, jwks_uri: s.jwksA2 })],
      [metaA2, () => Response.json({ issuer: v2Issuer(TENANT_A), jwks_uri: 'file:///etc/passwd' })],
      [s.jwksA2, () => Response.json({ keys: 'nope' })],
      [s.jwksA2, () => Response.json({ keys: [{ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', kid: 'ec' }] })],
      [s.jwksA2, () => Response.json({ keys: [{ ...keyA2.jwk, use: 'enc' }] })],
      [s.jwksA2, () => new Response('', { status: 500 })],
    ];
    for (const [url, respond] of garbage) {
      s.entra.clearOverrides();
      s.entra.override(url, respond);
      await s.time.advance(3600_000);
      expect(s.keys.stats().find((x) => x.tenant === TENANT_A && x.version === '2.0')?.consecutiveFailures).toBeGreaterThan(0);
      expect(s.keys.expectedIssuer(TENANT_A, '2.0')).toBe(v2Issuer(TENANT_A));
    }
    s.entra.clearOverrides();
    const result = await s.verifier.verify(token);
    expect(result.ok || result.reason).toBe(true);
    s.keys.stop();
  });

  it('skips keys that are not RSA signing keys and loads the rest', async () => {
    const s = setup();
    s.entra.setKeys(TENANT_A, '2.0', [
      { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'ec-key' },
      { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac-key' },
      { ...keyA2.jwk, use: 'enc' },
      { ...keyA2.jwk, kid: 'ps', alg: 'PS256' },
      keyA.jwk,
    ]);
    await s.keys.start();
    expect(s.keys.stats().find((x) => x.tenant === TENANT_A && x.version === '2.0')?.keyCount).toBe(1);
    expect(s.logs.filter((l) => l.msg === 'jwks key skipped')).toHaveLength(4);
    expect((await s.verifier.verify(await signToken(keyA, v2UserClaims(s.time.now())))).ok).toBe(true);
    const hmac = await s.keys.resolveKey(TENANT_A, '2.0', { kid: 'hmac-key' });
    expect(hmac.ok || hmac.reason).toBe('token_key_unknown');
    s.keys.stop();
  });

  it('answers keys_unavailable when nothing is cached and Entra cannot be reached', async () => {
    const s = setup();
    s.entra.setDown(true);
    await s.keys.start();
    expect(s.keys.isReady()).toBe(false);
    const result = await s.keys.resolveKey(TENANT_A, '2.0', { kid: keyA.kid });
    expect(result.ok || result.reason).toBe('keys_unavailable');
    const verified = await s.verifier.verify(await signToken(keyA, v2UserClaims(s.time.now())));
    expect(verified.ok || verified.reason).toBe('keys_unavailable');
    s.keys.stop();
  });

  it('loads lazily on first use when start was never called', async () => {
    const s = setup();
    expect((await s.verifier.verify(await signToken(keyA, v2UserClaims(s.time.now())))).ok).toBe(true);
  });

  it('drops keys not refreshed within the TTL and becomes unready', async () => {
    const s = setup({ keys: { ttlSeconds: 3600, refreshIntervalSeconds: 600 } });
    const changes: boolean[] = [];
    s.keys.onReadyChange((r) => changes.push(r));
    await s.keys.start();
    const token = await signToken(keyA, v2UserClaims(s.time.now(), { exp: Math.floor(s.time.now() / 1000) + 86_400 }));
    s.entra.setDown(true);

    await s.time.advance(3600_000); // exactly the TTL: still trusted
    expect((await s.verifier.verify(token)).ok).toBe(true);
    await s.time.advance(1000);
    const result = await s.verifier.verify(token);
    expect(result.ok || result.reason).toBe('keys_unavailable');
    expect(s.keys.isReady()).toBe(false);
    expect(changes).toEqual([true, false]);
    expect(s.keys.stats().every((x) => x.keyCount === 0)).toBe(true);

    // Entra comes back: the background retry (backoff capped at 60 s) restores the sets.
    s.entra.setDown(false);
    await s.time.advance(60_000);
    expect(s.keys.isReady()).toBe(true);
    expect(changes).toEqual([true, false, true]);
    expect((await s.verifier.verify(token)).ok).toBe(true);
    s.keys.stop();
  });

  it('backs off exponentially while Entra is down and never fetches in a tight loop', async () => {
    const s = setup({}, {});
    s.entra.setDown(true);
    await s.keys.start();
    const before = s.entra.requests.length;
    await s.time.advance(10 * 60_000);
    // Per set: retries at 1, 2, 4, 8, 16, 32 s, then every 60 s → 6 + 9 = 15 in ten minutes.
    const perSet = (s.entra.requests.length - before) / 4;
    expect(perSet).toBeLessThanOrEqual(16);
    expect(perSet).toBeGreaterThanOrEqual(10);
    s.keys.stop();
  });

  it('resolves a token with only x5t by its thumbprint', async () => {
    const s = setup();
    s.entra.publish(TENANT_A, [keyA, keyA2]);
    await s.keys.start();
    const byX5t = await s.keys.resolveKey(TENANT_A, '1.0', { x5t: keyA2.x5t });
    expect(byX5t.ok && byX5t.keyId).toBe(keyA2.kid);
    const neither = await s.keys.resolveKey(TENANT_A, '1.0', {});
    expect(neither.ok || neither.reason).toBe('token_key_unknown');
    s.keys.stop();
  });

  it('does not refresh for an unconfigured tenant', async () => {
    const s = setup();
    await s.keys.start();
    const before = s.entra.requests.length;
    const r = await s.keys.resolveKey('deadbeef-0000-4000-8000-00000000beef', '2.0', { kid: 'x' });
    expect(r.ok || r.reason).toBe('token_key_unknown');
    expect(s.entra.requests.length).toBe(before);
    s.keys.stop();
  });

  it('stops: cancels timers and aborts in-flight fetches', async () => {
    let aborted = false;
    const s = setup(
      {},
      {
        fetch: (_url, init) =>
          new Promise<Response>((_, reject) => {
            init?.signal?.addEventListener('abort', () => {
              aborted = true;
              reject(new DOMException('aborted', 'AbortError'));
            });
          }),
      },
    );
    const started = s.keys.start();
    s.keys.stop();
    await started;
    expect(aborted).toBe(true);
    expect(s.time.pendingTimers()).toBe(0);
  });
});
