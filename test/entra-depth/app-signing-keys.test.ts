import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
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

  describe('per audience', () => {
    const perAudience = { signingKeysAppId: { [DEMO.api.appId]: DEMO.api.appId, [DEMO.api.identifierUri]: DEMO.api.appId } };

    it('verifies a mapped audience with the app keys and another audience with the common keys', async () => {
      const hh = await start(perAudience);
      const mapped = await hh.emulator.issueToken({ audience: DEMO.api.appId, appId: DEMO.clients.reader.clientId });
      const other = await hh.emulator.issueToken({ audience: OTHER_API.appId, appId: DEMO.clients.reader.clientId, roles: ['Orders.Read'] });
      allowance(await hh.check({ token: mapped }));
      allowance(await hh.check({ token: other }));
    });

    it('refuses with token_key_unknown a token for a mapped audience signed with the common keys', async () => {
      const hh = await start(perAudience);
      const token = await hh.emulator.issueToken({ audience: DEMO.api.appId, appId: DEMO.clients.reader.clientId, kid: hh.emulator.currentKid });
      expect(denial(await hh.check({ token })).reason).toBe('token_key_unknown');
    });

    it('tells a v1 token without a ver claim by its issuer when every audience uses app keys', async () => {
      const hh = await start({ ...perAudience, audiences: [DEMO.api.appId, DEMO.api.identifierUri] });
      const token = await hh.emulator.issueToken({ version: '1.0', audience: DEMO.api.identifierUri, appId: DEMO.clients.reader.clientId, claims: { ver: undefined } });
      allowance(await hh.check({ token }));
    });

    it('refuses at load an audience that is not one of entra.audiences', () => {
      const yaml = `entra:\n  tenants: [${DEMO.tenantId}]\n  audiences: [api://orders]\n  signingKeysAppId: { api://other: ${DEMO.api.appId} }\nrules:\n  - name: any\n`;
      expect(() => parseConfig(yaml, 't.yaml', { env: {} })).toThrow(/signingKeysAppId/);
    });
  });
});
