import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DEMO } from '../../src/dev/emulator.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

const TENANT = '11111111-1111-4111-8111-111111111111';
const GRAPH = 'graph: { credential: { kind: managedIdentity } }';

function entraOf(lines: string) {
  return parseConfig(`entra:\n  tenants: [${TENANT}]\n  audiences: [api://orders]\n${lines}rules:\n  - name: any\n`, 't.yaml', { env: {} }).entra;
}

describe('cloud presets', () => {
  it('use the public cloud by default for both the authority and Graph', () => {
    const entra = entraOf(`  ${GRAPH}\n`);
    expect([entra.authority, entra.graph?.endpoint]).toEqual(['https://login.microsoftonline.com', 'https://graph.microsoft.com']);
  });

  it.each([
    ['usGovernment', 'https://login.microsoftonline.us', 'https://graph.microsoft.us'],
    ['china', 'https://login.partner.microsoftonline.cn', 'https://microsoftgraph.chinacloudapi.cn'],
  ])('set the %s authority and Graph host together', (cloud, authority, graph) => {
    const entra = entraOf(`  cloud: ${cloud}\n  ${GRAPH}\n`);
    expect([entra.authority, entra.graph?.endpoint]).toEqual([authority, graph]);
  });

  it('leave an explicit authority or Graph endpoint as written', () => {
    const entra = entraOf(`  cloud: usGovernment\n  authority: https://login.microsoftonline.us/\n  graph: { endpoint: https://dod-graph.microsoft.us, credential: { kind: managedIdentity } }\n`);
    expect([entra.authority, entra.graph?.endpoint]).toEqual(['https://login.microsoftonline.us', 'https://dod-graph.microsoft.us']);
  });

  it('refuse an unknown cloud at load', () => {
    expect(() => entraOf('  cloud: germany\n')).toThrow(/entra\.cloud/);
  });
});

describe('Microsoft Entra External ID (ciamlogin.com issuers), emulated', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const start = async (): Promise<Harness> => {
    h = await startHarness({ emulator: { tenantKind: 'externalId' }, entra: { tokenVersions: ['2.0'] }, rules: [{ name: 'any', require: {} }] });
    await h.waitServing();
    return h;
  };

  it('accepts a token with the tenant\'s External ID issuer', async () => {
    const hh = await start();
    const token = await hh.emulator.issueToken({ version: '2.0', appId: DEMO.clients.reader.clientId });
    const a = allowance(await hh.check({ token }));
    expect(a.headers['x-entra-tid']).toBe(DEMO.tenantId);
  });

  it.each([
    ['another host', (tid: string) => `https://${tid}.ciamlogin.com.evil.example/${tid}/v2.0`],
    ['the workforce form', (tid: string) => `https://login.microsoftonline.com/${tid}/v2.0`],
    ['a trailing segment', (tid: string) => `https://${tid}.ciamlogin.com/${tid}/v2.0/x`],
  ])('rejects a look-alike issuer (%s) with token_issuer_invalid', async (_name, issuer) => {
    const hh = await start();
    const token = await hh.emulator.issueToken({ version: '2.0', appId: DEMO.clients.reader.clientId, claims: { iss: issuer(DEMO.tenantId) } });
    expect(denial(await hh.check({ token })).reason).toBe('token_issuer_invalid');
  });
});
