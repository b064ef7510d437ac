import { describe, expect, it } from 'vitest';
import { createGroupResolver, type GroupResolverSettings } from '../../src/authn/entra/graph.js';

const TENANT = '11111111-1111-4111-8111-111111111111';
const USER = { tid: TENANT, oid: 'user-1', type: 'user' as const };
const SETTINGS: GroupResolverSettings = { endpoint: 'https://graph.example', timeoutMs: 100, cacheMaxEntries: 10, cacheTtlSeconds: 60 };
const gid = (i: number): string => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

interface Call {
  readonly url: string;
  readonly ids: readonly string[];
}

/** A fetch standing in for Graph: answers every id as a member unless `answer` says otherwise. */
function fakeGraph(answer: (call: Call, signal: AbortSignal | undefined) => Promise<Response> | Response = (c) => Response.json({ value: c.ids })) {
  const calls: Call[] = [];
  const fetch = (async (url: string | URL | Request, init?: RequestInit) => {
    const call = { url: String(url), ids: (JSON.parse(String(init?.body)) as { groupIds: string[] }).groupIds };
    calls.push(call);
    return answer(call, init?.signal ?? undefined);
  }) as typeof globalThis.fetch;
  return { calls, fetch };
}

const resolver = (fetch: typeof globalThis.fetch, now = () => 0) =>
  createGroupResolver({ settings: SETTINGS, graphToken: async () => 'graph-token', fetch, now });

describe('group resolver (Microsoft Graph checkMemberGroups)', () => {
  it('shares one Graph call among concurrent lookups of the same caller', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const graph = fakeGraph(async (c) => {
      await gate;
      return Response.json({ value: c.ids });
    });
    const r = resolver(graph.fetch);
    const pending = Array.from({ length: 5 }, () => r.memberOf(USER, [gid(1)]));
    release();
    for (const result of await Promise.all(pending)) expect(result).toEqual({ ok: true, memberOf: new Set([gid(1)]) });
    expect(graph.calls).toHaveLength(1);
  });

  it('builds the Microsoft Graph URL itself: users for user tokens, servicePrincipals for app tokens', async () => {
    const graph = fakeGraph();
    const r = resolver(graph.fetch);
    await r.memberOf(USER, [gid(1)]);
    await r.memberOf({ tid: TENANT, oid: 'sp/1', type: 'app' }, [gid(1)]);
    expect(graph.calls.map((c) => c.url)).toEqual([
      'https://graph.example/v1.0/users/user-1/checkMemberGroups',
      'https://graph.example/v1.0/servicePrincipals/sp%2F1/checkMemberGroups',
    ]);
  });

  it('asks about at most 20 groups per call and only about those not already known', async () => {
    const graph = fakeGraph();
    const r = resolver(graph.fetch);
    const ids = Array.from({ length: 25 }, (_, i) => gid(i));
    expect(await r.memberOf(USER, ids)).toMatchObject({ ok: true });
    expect(graph.calls.map((c) => c.ids.length)).toEqual([20, 5]);
    await r.memberOf(USER, [...ids.slice(0, 3), gid(99)]);
    expect(graph.calls[2]?.ids).toEqual([gid(99)]);
  });

  it('fails the lookup on its own timer when Graph does not answer', async () => {
    const graph = fakeGraph(
      (_c, signal) => new Promise<Response>((_resolve, reject) => signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))),
    );
    expect(await resolver(graph.fetch).memberOf(USER, [gid(1)])).toEqual({ ok: false, detail: 'Graph did not answer within 100 ms' });
  });

  it('pauses 30 s after a 429 without a usable Retry-After', async () => {
    let t = 0;
    let throttled = true;
    const graph = fakeGraph((c) => (throttled ? new Response('{}', { status: 429, headers: { 'retry-after': 'soon' } }) : Response.json({ value: c.ids })));
    const r = resolver(graph.fetch, () => t);
    expect(await r.memberOf(USER, [gid(1)])).toMatchObject({ ok: false });
    throttled = false;
    t = 29_999;
    expect(await r.memberOf(USER, [gid(1)])).toMatchObject({ ok: false });
    t = 30_000;
    expect(await r.memberOf(USER, [gid(1)])).toMatchObject({ ok: true });
    expect(graph.calls).toHaveLength(2);
  });

  it('fails closed on an answer that is not a list of group ids', async () => {
    const graph = fakeGraph(() => Response.json({ value: 'everything' }));
    expect(await resolver(graph.fetch).memberOf(USER, [gid(1)])).toEqual({ ok: false, detail: 'Graph answer has no list of group ids' });
  });

  it('fails closed when no Graph token can be had', async () => {
    const graph = fakeGraph();
    const r = createGroupResolver({ settings: SETTINGS, graphToken: async () => Promise.reject(new Error('no credential')), fetch: graph.fetch, now: () => 0 });
    expect(await r.memberOf(USER, [gid(1)])).toEqual({ ok: false, detail: 'no Graph access token (Error)' });
    expect(graph.calls).toHaveLength(0);
  });
});

describe('group resolver lookup outcomes (for the Graph lookup metric)', () => {
  const observed = (fetch: typeof globalThis.fetch, now: () => number = () => 0) => {
    const results: string[] = [];
    const r = createGroupResolver({ settings: SETTINGS, graphToken: async () => 'graph-token', fetch, now, onLookup: (result) => results.push(result) });
    return { r, results };
  };

  it('reports a miss for a lookup Graph answered and a hit for one the cache answered', async () => {
    const { r, results } = observed(fakeGraph().fetch);
    await r.memberOf(USER, [gid(1)]);
    await r.memberOf(USER, [gid(1)]);
    expect(results).toEqual(['miss', 'hit']);
  });

  it('reports throttled for a 429 and for lookups refused during its Retry-After', async () => {
    const { r, results } = observed(fakeGraph(() => new Response('', { status: 429, headers: { 'retry-after': '10' } })).fetch);
    await r.memberOf(USER, [gid(1)]);
    await r.memberOf(USER, [gid(2)]);
    expect(results).toEqual(['throttled', 'throttled']);
  });

  it('reports failed when Graph answers an error', async () => {
    const { r, results } = observed(fakeGraph(() => new Response('', { status: 503 })).fetch);
    expect(await r.memberOf(USER, [gid(1)])).toMatchObject({ ok: false });
    expect(results).toEqual(['failed']);
  });
});
