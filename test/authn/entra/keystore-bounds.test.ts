import { beforeAll, describe, expect, it } from 'vitest';
import { createKeyStore, type KeyStoreDeps } from '../../../src/authn/entra/keystore.js';
import { validateConfig } from '../../../src/config/load.js';
import { createFakeEntra, createFakeTime, entraConfig, makeKeys, TENANT_A, TENANT_B, type TestKey } from './fixtures.js';

/** Every wait of the key store is bounded: fetches, refreshes, checks, and the JWKS fetch rate. */

let keyA: TestKey;
let keyB: TestKey;
let rotated: TestKey;

beforeAll(async () => {
  [keyA, keyB, rotated] = await makeKeys('kid-a', 'kid-b', 'kid-rotated');
});

/** A fetch that never answers; with `ignoreAbort` it also ignores its abort signal. */
function hangingFetch(opts: { ignoreAbort?: boolean } = {}): typeof globalThis.fetch {
  return (_url, init) =>
    new Promise<Response>((_, reject) => {
      if (opts.ignoreAbort) return;
      init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    });
}

function setup(overrides: Parameters<typeof entraConfig>[0] = {}, deps: Partial<KeyStoreDeps> = {}) {
  const entra = createFakeEntra();
  entra.publish(TENANT_A, [keyA]);
  entra.publish(TENANT_B, [keyB]);
  const time = createFakeTime();
  let hang: { ignoreAbort?: boolean } | undefined;
  let gate: Promise<void> | undefined;
  const fetch: typeof globalThis.fetch = async (input, init) => {
    if (hang) return hangingFetch(hang)(input, init);
    if (gate) await gate;
    return entra.fetch(input, init);
  };
  const keys = createKeyStore({
    config: entraConfig(overrides),
    fetch,
    now: time.now,
    schedule: time.schedule,
    random: () => 0.5,
    ...deps,
  });
  const statsOf = (tenant: string, version: '1.0' | '2.0') => keys.stats().find((x) => x.tenant === tenant && x.version === version);
  return {
    entra,
    time,
    keys,
    statsOf,
    /** From now on every fetch hangs (or answers again with `undefined`). */
    setHang(value: { ignoreAbort?: boolean } | undefined) {
      hang = value;
    },
    /** Holds every fetch from now on until the returned function is called. */
    hold(): () => void {
      let release: () => void = () => {};
      gate = new Promise<void>((r) => (release = r));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

describe('key store bounds', () => {
  it('times out a fetch that never answers after fetchTimeoutMs and says it timed out', async () => {
    const reported: string[] = [];
    const s = setup({ keys: { fetchTimeoutMs: 100 } }, { onFetch: (kind, result) => reported.push(`${kind}:${result}`) });
    s.setHang({});
    const startedAt = Date.now();
    await s.keys.start();
    expect(Date.now() - startedAt).toBeLessThan(2000);
    expect(s.statsOf(TENANT_A, '2.0')?.lastError).toMatchObject({ kind: 'timeout' });
    expect(reported).toEqual(['discovery:timeout', 'discovery:timeout', 'discovery:timeout', 'discovery:timeout']); // one per set, for metrics
    expect(s.keys.readiness().problems.join('\n')).toMatch(/no keys \(timeout: .*timed out after 100 ms/);
    s.keys.stop();
  });

  it('abandons a refresh stuck past twice its bound, counts it and reports the set as not ready until a refresh completes', async () => {
    const s = setup({ keys: { fetchTimeoutMs: 100 } }, { checkDeadlineMs: 300 });
    await s.keys.start();
    expect(s.keys.isReady()).toBe(true);
    s.setHang({ ignoreAbort: true }); // a fetch that ignores its abort: only the watchdog can end the wait

    const waiting = s.keys.resolveKey(TENANT_A, '2.0', { kid: rotated.kid }); // starts a refresh that hangs
    await s.time.advance(300);
    expect((await waiting).ok).toBe(false);
    await s.time.advance(99); // 399 ms: just under 2 × (2 fetches × 100 ms)
    expect(s.statsOf(TENANT_A, '2.0')).toMatchObject({ abandonedRefreshes: 0, refreshStuck: false });
    expect(s.keys.isReady()).toBe(true);

    await s.time.advance(1);
    expect(s.statsOf(TENANT_A, '2.0')).toMatchObject({ abandonedRefreshes: 1, refreshStuck: true, keyCount: 1 });
    expect(s.keys.isReady()).toBe(false);
    expect(s.keys.readiness().problems).toEqual([`tenant ${TENANT_A} v2.0: refresh stuck (abandoned after 400 ms)`]);

    // The set is free to refresh again: the next scheduled refresh completes and clears the state.
    s.setHang(undefined);
    await s.time.advance(3600_000);
    expect(s.statsOf(TENANT_A, '2.0')).toMatchObject({ abandonedRefreshes: 1, refreshStuck: false });
    expect(s.keys.isReady()).toBe(true);
    s.keys.stop();
  });

  it('answers a check waiting on a refresh at the deadline with token_key_unknown when the tenant has keys, and keeps the refresh going', async () => {
    const s = setup({ keys: { fetchTimeoutMs: 10_000 } }, { checkDeadlineMs: 300 });
    await s.keys.start();
    s.entra.publish(TENANT_A, [keyA, rotated]); // Entra has rotated a key in, but now answers slowly
    const release = s.hold();

    let answered = false;
    const waiting = s.keys.resolveKey(TENANT_A, '2.0', { kid: rotated.kid }).finally(() => (answered = true));
    await s.time.advance(299);
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).toBe(false);
    await s.time.advance(1);
    const atDeadline = await waiting;
    expect(atDeadline.ok || atDeadline.reason).toBe('token_key_unknown');

    release(); // the refresh finishes in the background; later checks find the key without a fetch
    await new Promise((r) => setTimeout(r, 20));
    const fetchesBefore = s.entra.requests.length;
    expect((await s.keys.resolveKey(TENANT_A, '2.0', { kid: rotated.kid })).ok).toBe(true);
    expect(s.entra.requests.length).toBe(fetchesBefore);
    s.keys.stop();
  });

  it('answers keys_unavailable at the deadline when the tenant has no keys yet', async () => {
    const s = setup({ keys: { fetchTimeoutMs: 10_000 } }, { checkDeadlineMs: 300 });
    s.setHang({});
    const waiting = s.keys.resolveKey(TENANT_A, '2.0', { kid: keyA.kid });
    await s.time.advance(300);
    const result = await waiting;
    expect(result.ok || result.reason).toBe('keys_unavailable');
    expect(result.ok || result.detail).toMatch(/refresh is still in flight/);
    s.keys.stop();
  });

  it('caps JWKS fetches per minute across all tenants whatever the cooldown', async () => {
    const s = setup({ keys: { unknownKidCooldownSeconds: 10, maxJwksFetchesPerMinute: 6 } });
    await s.keys.start(); // 4 sets: 4 JWKS fetches, counted in the budget
    const jwksFetches = (): number => s.entra.requests.filter((u) => u.includes('/discovery/')).length;
    const missEverywhere = () =>
      Promise.all(
        [TENANT_A, TENANT_B].flatMap((t) => (['1.0', '2.0'] as const).map((v) => s.keys.resolveKey(t, v, { kid: 'made-up' }))),
      );
    expect(jwksFetches()).toBe(4);

    await missEverywhere();
    expect(jwksFetches()).toBe(6); // two more fit the budget, the other two sets are refused
    await s.time.advance(10_000); // past the cooldown, inside the minute
    await missEverywhere();
    expect(jwksFetches()).toBe(6);
    expect(s.keys.stats().reduce((n, x) => n + x.refreshesOverBudget, 0)).toBe(6);

    await s.time.advance(50_000); // the minute is over: the budget is back
    await missEverywhere();
    expect(jwksFetches()).toBe(10);
    s.keys.stop();
  });

  it('refuses an unknown-kid cooldown below 10 seconds in the configuration', () => {
    const base = { entra: { tenants: [TENANT_A], audiences: ['api://orders'] }, rules: [{ name: 'all', allowAnonymous: true }] };
    expect(() => validateConfig({ ...base, entra: { ...base.entra, keys: { unknownKidCooldownSeconds: 0 } } })).toThrow(/unknownKidCooldownSeconds/);
    expect(() => validateConfig({ ...base, entra: { ...base.entra, keys: { unknownKidCooldownSeconds: 9 } } })).toThrow(/unknownKidCooldownSeconds/);
    const config = validateConfig({ ...base, entra: { ...base.entra, keys: { unknownKidCooldownSeconds: 10 } } });
    expect(config.entra.keys).toMatchObject({ unknownKidCooldownSeconds: 10, fetchTimeoutMs: 2000, maxJwksFetchesPerMinute: 30 });
    expect(config.server.checkDeadlineMs).toBe(300);
  });
});
