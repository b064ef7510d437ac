import { afterEach, describe, expect, it } from 'vitest';
import { DEMO } from '../../src/dev/emulator.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

/** The demo API with claims mapping: Entra signs its tokens with a key of its own. */
const MAPPED_API = { ...DEMO.api, claimsMapping: true };
const OTHER_API = { ...DEMO.api, appId: '0e0e0e0e-0000-4000-8000-0000000000ee', identifierUri: 'api://other', claimsMapping: false };

describe('app-specific signing keys (entra.signingKeysAppId)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const start = async (entra: Record<string, unknown>): Promise<Harness> => {
    h = await startHarness({
      emulator: { apis: [MAPPED_API, OTHER_API] },
      entra: { audiences: [DEMO.api.appId, DEMO.api.identifierUri, OTHER_API.appId], ...entra },
    });
    await h.waitServing();
    return h;
  };

  it('accepts a token signed with the app key when the keys are fetched with ?appid=', async () => {
    const hh = await start({ signingKeysAppId: DEMO.api.appId.toUpperCase() });
    const token = await hh.emulator.issueToken({ audience: DEMO.api.appId, appId: DEMO.clients.reader.clientId });
    allowance(await hh.check({ token }));
  });

  it('refuses the same token with token_key_unknown when only the common keys are fetched', async () => {
    const hh = await start({});
    const token = await hh.emulator.issueToken({ audience: DEMO.api.appId, appId: DEMO.clients.reader.clientId });
    expect(denial(await hh.check({ token })).reason).toBe('token_key_unknown');
  });

  it('refuses a token signed with the common keys once the app keys are configured', async () => {
    const hh = await start({ signingKeysAppId: DEMO.api.appId });
    const token = await hh.emulator.issueToken({ audience: OTHER_API.appId, appId: DEMO.clients.reader.clientId });
    expect(denial(await hh.check({ token })).reason).toBe('token_key_unknown');
  });
});
