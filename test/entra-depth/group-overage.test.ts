import { afterEach, describe, expect, it } from 'vitest';
import { DEMO, groupOverageClaims } from '../../src/dev/emulator.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

const PAYMENTS = '0f8e2d1c-0000-4000-8000-00000000aaaa';
const AUDITORS = '1c2d3e4f-0000-4000-8000-00000000bbbb';
const USER = '5d5d5d5d-0000-4000-8000-000000000001';
const TTL_SECONDS = 300;
const { reader } = DEMO.clients;

describe('group overage resolved through Microsoft Graph (emulated) by the real server', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const start = async (extraDeps: { keyDocumentFetch?: typeof globalThis.fetch } = {}): Promise<Harness> => {
    // The Graph token is asked for at check time, once the harness (and its emulator) exists.
    const box: { harness?: Harness } = {};
    const started = await startHarness({
      entra: (url) => ({
        graph: { endpoint: url, credential: { kind: 'managedIdentity' }, timeoutMs: 2000, cache: { maxEntries: 100, ttlSeconds: TTL_SECONDS } },
      }),
      rules: [
        { name: 'payments', match: { contextExtensions: { policy: 'payments' } }, require: { groups: { anyOf: [PAYMENTS] } } },
        { name: 'any', require: {} },
      ],
      deps: {
        ...extraDeps,
        graphToken: (tenant) => box.harness!.emulator.issueToken({ tenant, audience: 'https://graph.microsoft.com', appId: reader.clientId, roles: ['GroupMember.Read.All'] }),
      },
    });
    box.harness = started;
    await started.waitServing();
    h = started;
    return started;
  };

  const overageUserToken = (hh: Harness, oid = USER) =>
    hh.emulator.issueToken({ appId: reader.clientId, oid, scopes: ['Orders.Read'], claims: groupOverageClaims(DEMO.tenantId, oid) });
  const payments = (hh: Harness, token: string) => hh.check({ token, contextExtensions: { policy: 'payments' } });

  it('allows a user whose membership Graph confirms, with one Graph call for many concurrent checks', async () => {
    const hh = await start();
    hh.emulator.graph.setMemberships(USER, [AUDITORS, PAYMENTS]);
    const token = await overageUserToken(hh);
    const results = await Promise.all(Array.from({ length: 8 }, () => payments(hh, token)));
    for (const r of results) allowance(r);
    expect(hh.emulator.graph.calls).toBe(1);
    allowance(await payments(hh, await overageUserToken(hh)));
    expect(hh.emulator.graph.calls).toBe(1);
  });

  it('calls Graph itself when key documents come through a GET-only shared fetch, as in worker processes', async () => {
    const keyDocuments: string[] = [];
    // Like the workers' fetch through the primary: plain GETs of key documents, nothing else.
    const keyDocumentFetch = ((url: string | URL | Request, init?: RequestInit) => {
      if (init?.method !== undefined && init.method !== 'GET') throw new Error(`key-document fetch asked for ${init.method}`);
      keyDocuments.push(String(url));
      return globalThis.fetch(url, init);
    }) as typeof globalThis.fetch;
    const hh = await start({ keyDocumentFetch });
    hh.emulator.graph.setMemberships(USER, [PAYMENTS]);
    allowance(await payments(hh, await overageUserToken(hh)));
    expect(hh.emulator.graph.calls).toBe(1);
    expect(keyDocuments.length).toBeGreaterThan(0);
    expect(keyDocuments.filter((u) => u.includes('checkMemberGroups'))).toEqual([]);
  });

  it('denies with 403 missing_group when Graph says the user is not a member', async () => {
    const hh = await start();
    hh.emulator.graph.setMemberships(USER, [AUDITORS]);
    expect(denial(await payments(hh, await overageUserToken(hh))).reason).toBe('missing_group');
  });

  it('asks Graph again once the cached answer is older than the TTL', async () => {
    const hh = await start();
    hh.emulator.graph.setMemberships(USER, [PAYMENTS]);
    allowance(await payments(hh, await overageUserToken(hh)));
    hh.emulator.graph.setMemberships(USER, []);
    hh.clock.advance((TTL_SECONDS - 1) * 1000);
    allowance(await payments(hh, await overageUserToken(hh)));
    hh.clock.advance(2000);
    expect(denial(await payments(hh, await overageUserToken(hh))).reason).toBe('missing_group');
    expect(hh.emulator.graph.calls).toBe(2);
  });

  it('looks up an app caller as a service principal', async () => {
    const hh = await start();
    const sp = hh.emulator.oidFor(reader.clientId);
    hh.emulator.graph.setMemberships(sp, [PAYMENTS]);
    const token = await hh.emulator.issueToken({ appId: reader.clientId, claims: groupOverageClaims(DEMO.tenantId, sp) });
    allowance(await payments(hh, token));
  });

  it('denies with 503 group_lookup_failed while Graph throttles, and makes no call until Retry-After has passed', async () => {
    const hh = await start();
    hh.emulator.graph.setMemberships(USER, [PAYMENTS]);
    hh.emulator.graph.setThrottle(30);
    const d = denial(await payments(hh, await overageUserToken(hh)));
    expect(d).toMatchObject({ reason: 'group_lookup_failed', grpcCode: 14, httpStatus: 'ServiceUnavailable' });
    hh.emulator.graph.setThrottle(undefined);
    hh.clock.advance(29_000);
    expect(denial(await payments(hh, await overageUserToken(hh))).reason).toBe('group_lookup_failed');
    expect(hh.emulator.graph.calls).toBe(1);
    hh.clock.advance(2000);
    allowance(await payments(hh, await overageUserToken(hh)));
    expect(hh.emulator.graph.calls).toBe(2);
  });

  it('denies with group_lookup_failed, never allows, when Graph is down', async () => {
    const hh = await start();
    hh.emulator.graph.setMemberships(USER, [PAYMENTS]);
    hh.emulator.graph.setAvailable(false);
    expect(denial(await payments(hh, await overageUserToken(hh))).reason).toBe('group_lookup_failed');
  });

  it('does not call Graph for a rule that names no group', async () => {
    const hh = await start();
    allowance(await hh.check({ token: await overageUserToken(hh) }));
    expect(hh.emulator.graph.calls).toBe(0);
  });
});
