import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEMO } from '../../src/dev/emulator.js';
import { allowance, denial, harnessConfig, startHarness, type Harness } from '../support/harness.js';

/** The running server's reload (startApp → RunningApp.reload), over real gRPC against the emulator. */
describe('hot reload of a running server', () => {
  let h: Harness;
  const reader = DEMO.clients.reader;

  // A server of its own for each test: every reload starts from the same configuration.
  beforeEach(async () => {
    h = await startHarness();
    await h.waitServing();
  });
  afterEach(() => h.close());

  const readerToken = () => h.emulator.issueToken({ version: '2.0', audience: DEMO.api.appId, appId: reader.clientId });

  it('swaps the rules and keeps the loaded keys when the entra section is unchanged', async () => {
    const token = await readerToken();
    allowance(await h.check({ token, path: '/orders' }));
    const jwksFetches = h.emulator.fetchCount('jwks');

    await h.app.reload(
      harnessConfig(h.emulator.url, {
        rules: [{ name: 'writers-only', require: { roles: { anyOf: ['Orders.Write'] } } }],
        response: { dryRunHeader: 'x-entra-authz-dry-run' },
      }),
    );
    expect(denial(await h.check({ token, path: '/orders' })).reason).toBe('missing_role');
    expect(h.emulator.fetchCount('jwks')).toBe(jwksFetches);
    expect(h.app.isServing()).toBe(true);

    // Dry-run on the new config: allowed, with the would-be reason upstream.
    await h.app.reload(harnessConfig(h.emulator.url, { rules: [{ name: 'writers-only', require: { roles: { anyOf: ['Orders.Write'] } }, dryRun: true }], response: { dryRunHeader: 'x-entra-authz-dry-run' } }));
    expect(allowance(await h.check({ token, path: '/orders' })).headers['x-entra-authz-dry-run']).toBe('missing_role');
  });

  it('rebuilds the key store when the entra section changed, and keeps the old config if its keys cannot load', async () => {
    const token = await readerToken();
    const before = h.emulator.fetchCount('jwks');
    await h.app.reload(harnessConfig(h.emulator.url, { entra: { audiences: [DEMO.api.appId] } }));
    expect(h.emulator.fetchCount('jwks')).toBeGreaterThan(before);
    allowance(await h.check({ token, path: '/orders' }));

    h.emulator.setAvailable(false);
    try {
      await expect(h.app.reload(harnessConfig(h.emulator.url, { entra: { audiences: [DEMO.api.identifierUri] }, rules: [{ name: 'none', match: { methods: ['PATCH'] } }] }))).rejects.toThrow(
        /could not be loaded; keeping the running configuration/,
      );
    } finally {
      h.emulator.setAvailable(true);
    }
    // Still the previous configuration: the v2 token (aud = app id) is accepted by the previous rules.
    allowance(await h.check({ token, path: '/orders' }));
  });
});
