import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKeyStore } from '../../src/authn/entra/keystore.js';
import { createTokenVerifier } from '../../src/authn/entra/verifier.js';
import { createCachingVerifier } from '../../src/cache/token-cache.js';
import type { TokenVerifier } from '../../src/core/verifier.js';
import { createFakeEntra, createFakeTime, entraConfig, makeKeys, signToken, TENANT_A, v2UserClaims, type TestKey } from '../authn/entra/fixtures.js';

/**
 * What the verified-token cache costs per token decides how many tokens fit in a process: with
 * 100,000 cached tokens every 100 bytes per entry is 10 MB. Measured on the V8 heap after a full
 * collection, with the real verifier's identities.
 */
const TOKENS = 2000;
const MAX_BYTES_PER_TOKEN = 800;

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

function heapUsedAfterGc(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

let key: TestKey;
beforeAll(async () => {
  [key] = await makeKeys('kid-memory');
});

describe('verified-token cache memory', () => {
  it('holds each verified token in under 800 bytes of heap when callers repeat their claims', async () => {
    const entra = createFakeEntra();
    entra.publish(TENANT_A, [key]);
    const time = createFakeTime();
    const config = entraConfig();
    const keys = createKeyStore({ config, fetch: entra.fetch, now: time.now, schedule: time.schedule, random: () => 0.5 });
    await keys.start();
    const cached = createCachingVerifier(createTokenVerifier({ config, keys, now: time.now }), { maxEntries: 2 * TOKENS, ttlSeconds: 3600, clockSkewSeconds: 60 }, time.now);
    // Each token differs (as renewed tokens do, by uti) while caller, client, tenant and scopes repeat.
    const verifyDistinct = async (verifier: TokenVerifier, from: number, count: number): Promise<void> => {
      for (let i = from; i < from + count; i++) {
        const result = await verifier.verify(await signToken(key, v2UserClaims(time.now(), { uti: `uti-${i}` })));
        if (!result.ok) throw new Error(`${result.reason}: ${result.detail}`);
      }
    };
    await verifyDistinct(cached, 0, 100); // warm up: compiled code and pools are not per-token costs

    const before = heapUsedAfterGc();
    await verifyDistinct(cached, 100, TOKENS);
    const perToken = (heapUsedAfterGc() - before) / TOKENS;

    expect(await cached.verify(await signToken(key, v2UserClaims(time.now(), { uti: 'uti-100' })))).toMatchObject({ ok: true, cacheHit: true });
    expect(perToken, `${perToken.toFixed(0)} bytes per cached token`).toBeLessThan(MAX_BYTES_PER_TOKEN);
  });
});
