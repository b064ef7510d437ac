import { afterEach, describe, expect, it } from 'vitest';
import { denial, startHarness, type Harness } from '../support/harness.js';

describe('a check that needs a key refresh while Entra is slow', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('is answered token_key_unknown at server.checkDeadlineMs, and the key is accepted once the refresh lands', async () => {
    h = await startHarness({ server: { checkDeadlineMs: 200 } });
    await h.waitServing();
    const kid = await h.emulator.rotateKeys(); // a key the server has not fetched yet
    const token = await h.emulator.issueToken({ kid });
    h.emulator.setResponseDelay(1500); // Entra answers, slowly (within keys.fetchTimeoutMs)

    const startedAt = Date.now();
    const first = denial(await h.check({ token }));
    const elapsed = Date.now() - startedAt;
    expect(first.reason).toBe('token_key_unknown');
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1400); // well before the slow JWKS answered

    // The refresh went on in the background: once it has landed, the same token is allowed.
    const outcome = async (): Promise<string> => {
      const r = await h!.check({ token });
      return r.kind === 'response' && !r.response.denied_response ? 'allowed' : 'denied';
    };
    await expect.poll(outcome, { timeout: 5000, interval: 200 }).toBe('allowed');
    expect(h.emulator.fetchCount('jwks')).toBe(3); // the two initial loads and the one refresh
  });
});
