import { describe, expect, it } from 'vitest';
import { createAuditForwarder } from '../../src/cluster/audit-forwarder.js';
import type { WorkerMessage } from '../../src/cluster/protocol.js';
import { createSharedFetch } from '../../src/cluster/shared-fetch.js';

/** A fetch that counts calls per URL and answers once released. */
function countingFetch(): { fetch: typeof globalThis.fetch; calls: string[]; fail: boolean } {
  const state = {
    calls: [] as string[],
    fail: false,
    fetch: (async (url: string | URL | Request) => {
      state.calls.push(String(url));
      if (state.fail) throw new Error('unreachable');
      return new Response('{"keys":[]}', { status: 200, headers: { 'content-type': 'application/json' } });
    }) as typeof globalThis.fetch,
  };
  return state;
}

describe('key documents shared by the workers', () => {
  it('are fetched once for workers asking together and reused within the cooldown', async () => {
    let now = 0;
    const upstream = countingFetch();
    const shared = createSharedFetch({ fetch: upstream.fetch, reuseMs: 300_000, timeoutMs: 1000, now: () => now });
    const answers = await Promise.all([shared('https://e/keys'), shared('https://e/keys'), shared('https://e/keys')]);
    expect(answers.map((a) => a.body)).toEqual(['{"keys":[]}', '{"keys":[]}', '{"keys":[]}']);
    now += 299_000;
    await shared('https://e/keys');
    expect(upstream.calls).toEqual(['https://e/keys']);
    now += 2000;
    await shared('https://e/keys');
    expect(upstream.calls).toHaveLength(2);
  });

  it('are fetched separately per URL', async () => {
    const upstream = countingFetch();
    const shared = createSharedFetch({ fetch: upstream.fetch, reuseMs: 300_000, timeoutMs: 1000, now: () => 0 });
    await Promise.all([shared('https://e/v1/keys'), shared('https://e/v2/keys')]);
    expect(upstream.calls.sort()).toEqual(['https://e/v1/keys', 'https://e/v2/keys']);
  });

  it('do not keep a failure: the next worker asking tries again', async () => {
    const upstream = countingFetch();
    const shared = createSharedFetch({ fetch: upstream.fetch, reuseMs: 300_000, timeoutMs: 1000, now: () => 0 });
    upstream.fail = true;
    await expect(shared('https://e/keys')).rejects.toThrow('unreachable');
    upstream.fail = false;
    await expect(shared('https://e/keys')).resolves.toMatchObject({ status: 200 });
    expect(upstream.calls).toHaveLength(2);
  });
});

describe('a worker’s audit lines on their way to the primary', () => {
  it('travel in whole-line batches, and beyond the bound are dropped and counted', async () => {
    const sent: Extract<WorkerMessage, { type: 'entra-authz:audit' }>[] = [];
    const done: (() => void)[] = [];
    let dropped = 0;
    const forwarder = createAuditForwarder({
      // The channel takes nothing until released: lines pile up against the bound.
      send: (m, cb) => {
        if (m.type === 'entra-authz:audit') sent.push(m);
        done.push(cb);
      },
      maxBufferBytes: 100,
      onDrop: (n) => (dropped += n),
    });
    const line = `${'x'.repeat(39)}\n`; // 40 characters
    for (let i = 0; i < 4; i++) forwarder.write(line);
    expect(dropped).toBe(2);
    const flushed = forwarder.flush();
    for (const cb of done.splice(0)) cb();
    await flushed;
    expect(sent).toEqual([{ type: 'entra-authz:audit', lines: line + line, records: 2 }]);
  });
});
