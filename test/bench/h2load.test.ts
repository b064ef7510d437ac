import { describe, expect, it } from 'vitest';
import { rateFromOutput } from '../../bench/h2load.js';

/** The summary h2load prints after a run (nghttp2 1.52), with the counts that vary. */
function output(o: { done: number; failed: number; errored?: number; codes: [number, number, number, number] }): string {
  const [c2, c3, c4, c5] = o.codes;
  return [
    'finished in 4.00s, 5000.25 req/s, 1.20MB/s',
    `requests: ${o.done} total, ${o.done} started, ${o.done} done, ${o.done - o.failed} succeeded, ${o.failed} failed, ${o.errored ?? 0} errored, 0 timeout`,
    `status codes: ${c2} 2xx, ${c3} 3xx, ${c4} 4xx, ${c5} 5xx`,
  ].join('\n');
}

describe('h2load results in the benchmark', () => {
  it('reports the rate of a run whose every answer is an allow', () => {
    expect(rateFromOutput(output({ done: 300, failed: 0, codes: [300, 0, 0, 0] }), '2xx')).toBe(5000.25);
  });

  it('reports the rate of a deny scenario, which h2load counts as failed requests', () => {
    expect(rateFromOutput(output({ done: 300, failed: 300, codes: [0, 0, 300, 0] }), '4xx')).toBe(5000.25);
  });

  it('reads a timed run that stopped with answers still streaming, all of the expected class', () => {
    expect(rateFromOutput(output({ done: 9964, failed: 0, codes: [9993, 0, 0, 0] }), '2xx')).toBe(5000.25);
  });

  it('refuses a run in which fewer requests were answered than done', () => {
    expect(() => rateFromOutput(output({ done: 300, failed: 0, codes: [298, 0, 0, 0] }), '2xx')).toThrow(/answers other than 2xx/);
  });

  it('refuses an allow scenario in which some answers were denies', () => {
    expect(() => rateFromOutput(output({ done: 300, failed: 1, codes: [299, 0, 1, 0] }), '2xx')).toThrow(/answers other than 2xx/);
  });

  it('refuses a deny scenario in which some answers were server errors', () => {
    expect(() => rateFromOutput(output({ done: 300, failed: 300, codes: [0, 0, 299, 1] }), '4xx')).toThrow(/answers other than 4xx/);
  });

  it('refuses a run in which requests got no answer', () => {
    expect(() => rateFromOutput(output({ done: 300, failed: 2, errored: 2, codes: [298, 0, 0, 0] }), '2xx')).toThrow();
  });

  it('refuses output it cannot read', () => {
    expect(() => rateFromOutput('connect: Connection refused', '2xx')).toThrow(/unexpected output/);
  });
});
