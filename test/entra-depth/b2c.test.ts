import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DEMO } from '../../src/dev/emulator.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

const DOMAIN = 'contosob2c.onmicrosoft.com';
const SIGN_IN = 'B2C_1_signupsignin';
const RESET = 'B2C_1_passwordreset';
const PROFILE = 'B2C_1A_profileedit';

function entraOf(lines: string) {
  return parseConfig(`entra:\n${lines}rules:\n  - name: any\n`, 't.yaml', { env: {} }).entra;
}

describe('Azure AD B2C configuration', () => {
  it('accepts a B2C tenant with its domain and user flows', () => {
    const entra = entraOf(
      `  authority: https://contosob2c.b2clogin.com\n  tenants: [${DEMO.tenantId}]\n  audiences: [api://orders]\n  b2c: { tenant: ${DOMAIN}, userFlows: [${SIGN_IN}] }\n`,
    );
    expect(entra.b2c).toEqual({ tenant: DOMAIN, userFlows: [SIGN_IN] });
  });

  it.each([
    ['no authority', `  tenants: [${DEMO.tenantId}]\n  audiences: [a]\n  b2c: { userFlows: [${SIGN_IN}] }\n`, /entra\.authority/],
    ['two tenants', `  authority: https://x.b2clogin.com\n  tenants: [${DEMO.tenantId}, 22222222-2222-4222-8222-222222222222]\n  audiences: [a]\n  b2c: { userFlows: [${SIGN_IN}] }\n`, /entra\.tenants/],
    ['a name that is not a user flow', `  authority: https://x.b2clogin.com\n  tenants: [${DEMO.tenantId}]\n  audiences: [a]\n  b2c: { userFlows: [signin] }\n`, /entra\.b2c\.userFlows/],
    ['no user flow', `  authority: https://x.b2clogin.com\n  tenants: [${DEMO.tenantId}]\n  audiences: [a]\n  b2c: { userFlows: [] }\n`, /entra\.b2c\.userFlows/],
  ])('refuses a B2C section with %s at load', (_name, lines, path) => {
    expect(() => entraOf(lines)).toThrow(path);
  });
});

describe('Azure AD B2C tokens through the server and the emulated b2clogin metadata', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const start = async (issuerForm: 'tenant' | 'tfp', metadataTenant: string = DOMAIN): Promise<Harness> => {
    h = await startHarness({
      emulator: { b2c: { domain: DOMAIN, userFlows: [SIGN_IN, RESET, PROFILE], issuerForm } },
      entra: { b2c: { tenant: metadataTenant, userFlows: [SIGN_IN, PROFILE.toLowerCase()] } },
      rules: [{ name: 'any', require: {} }],
    });
    await h.waitServing();
    return h;
  };
  const issue = (hh: Harness, userFlow: string, claims?: Record<string, unknown>): Promise<string> =>
    hh.emulator.issueToken({ version: '2.0', appId: DEMO.clients.reader.clientId, userFlow, ...(claims ? { claims } : {}) });

  it.each([
    ['{tenant id}/v2.0/', 'tenant' as const, DOMAIN],
    ['tfp/{tenant id}/{user flow}/v2.0/', 'tfp' as const, DOMAIN],
    ['{tenant id}/v2.0/ with metadata below the tenant id', 'tenant' as const, DEMO.tenantId],
  ])('accepts a token of a configured user flow with the issuer form %s', async (_name, form, metadataTenant) => {
    const hh = await start(form, metadataTenant);
    const token = await issue(hh, SIGN_IN);
    const a = allowance(await hh.check({ token }));
    expect(a.headers['x-entra-tid']).toBe(DEMO.tenantId);
  });

  it('accepts a user flow named by acr instead of tfp, in any letter case', async () => {
    const hh = await start('tenant');
    const token = await issue(hh, PROFILE, { tfp: undefined, acr: PROFILE.toUpperCase() });
    allowance(await hh.check({ token }));
  });

  it('fetches metadata and keys for each configured user flow', async () => {
    const hh = await start('tfp');
    expect(hh.emulator.fetchCount('discovery')).toBe(2);
    expect(hh.emulator.fetchCount('jwks')).toBe(2);
  });

  it('denies with token_user_flow_not_allowed a token of a user flow that is not configured', async () => {
    const hh = await start('tenant');
    const token = await issue(hh, RESET);
    const d = denial(await hh.check({ token }));
    expect([d.reason, d.httpStatus]).toEqual(['token_user_flow_not_allowed', 'Unauthorized']);
  });

  it('points the challenge of a request without a token at the first user flow\'s authorize endpoint', async () => {
    const hh = await start('tenant');
    const d = denial(await hh.check({}));
    expect(d.headers['www-authenticate']).toContain(`authorization_uri="${hh.emulator.url}/${DOMAIN}/${SIGN_IN}/oauth2/v2.0/authorize"`);
  });

  it('denies with token_claims_invalid a token that names no user flow', async () => {
    const hh = await start('tenant');
    const token = await issue(hh, SIGN_IN, { tfp: undefined });
    expect(denial(await hh.check({ token })).reason).toBe('token_claims_invalid');
  });

  it('denies with token_issuer_invalid a token whose tfp issuer names another configured user flow', async () => {
    const hh = await start('tfp');
    const token = await issue(hh, SIGN_IN, { tfp: PROFILE });
    expect(denial(await hh.check({ token })).reason).toBe('token_issuer_invalid');
  });

  it.each([
    ['no trailing slash', (url: string, tid: string) => `${url}/${tid}/v2.0`],
    ['another host', (_url: string, tid: string) => `https://contosob2c.b2clogin.com.evil.example/${tid}/v2.0/`],
    ['the workforce form', (_url: string, tid: string) => `https://login.microsoftonline.com/${tid}/v2.0`],
    ['the tfp form where the flow emits the tenant form', (url: string, tid: string) => `${url}/tfp/${tid}/${SIGN_IN}/v2.0/`],
    ['another tenant', (url: string) => `${url}/22222222-2222-4222-8222-222222222222/v2.0/`],
  ])('denies with token_issuer_invalid a look-alike issuer (%s)', async (_name, issuer) => {
    const hh = await start('tenant');
    const token = await issue(hh, SIGN_IN, { iss: issuer(hh.emulator.url, DEMO.tenantId) });
    expect(denial(await hh.check({ token })).reason).toBe('token_issuer_invalid');
  });

  it('denies with token_key_unknown a token signed by a key the user flow does not publish', async () => {
    const hh = await start('tenant');
    const token = await hh.emulator.signWithUnpublishedKey({ version: '2.0', appId: DEMO.clients.reader.clientId, userFlow: SIGN_IN });
    expect(denial(await hh.check({ token })).reason).toBe('token_key_unknown');
  });
});
