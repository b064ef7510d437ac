import { describe, expect, it } from 'vitest';
import { createGraphTokenSource, loadAzureIdentity, type AzureIdentity } from '../../src/authn/entra/graph-credential.js';
import type { GraphConfig } from '../../src/config/schema.js';

const GRAPH: GraphConfig = {
  endpoint: 'https://graph.microsoft.us',
  credential: { kind: 'clientSecret', clientId: '3f4e5d6c-0000-4000-8000-000000000042', clientSecret: 'graph-secret' },
  timeoutMs: 400,
  cache: { maxEntries: 100, ttlSeconds: 300 },
};

/** Records what the server asks @azure/identity for, and hands out one token per credential. */
function fakeIdentity(): { lib: AzureIdentity; built: string[]; scopes: string[] } {
  const built: string[] = [];
  const scopes: string[] = [];
  class ClientSecretCredential {
    constructor(tenantId: string, clientId: string, _secret: string, options: { authorityHost: string }) {
      built.push(`${tenantId} ${clientId} ${options.authorityHost}`);
    }
    getToken(scope: string): Promise<{ token: string }> {
      scopes.push(scope);
      return Promise.resolve({ token: `graph-token-${built.length}` });
    }
  }
  return { lib: { ClientSecretCredential } as unknown as AzureIdentity, built, scopes };
}

describe('Graph credentials', () => {
  it('refuses to start Graph lookups with the install instruction when @azure/identity is missing', async () => {
    const missing = (): Promise<AzureIdentity> => Promise.reject(new Error("Cannot find package '@azure/identity'"));
    await expect(loadAzureIdentity(missing)).rejects.toThrow(/npm install --omit=dev @azure\/identity/);
  });

  it('loads @azure/identity when it is installed', async () => {
    const lib = await loadAzureIdentity();
    expect(typeof lib.ClientSecretCredential).toBe('function');
  });

  it("asks for the configured cloud's Graph scope, signing in at the authority, one credential per tenant", async () => {
    const { lib, built, scopes } = fakeIdentity();
    const token = createGraphTokenSource(GRAPH, 'https://login.microsoftonline.us', lib);
    await token('11111111-0000-4000-8000-000000000001');
    await token('11111111-0000-4000-8000-000000000001');
    await token('22222222-0000-4000-8000-000000000002');
    expect(built).toEqual([
      '11111111-0000-4000-8000-000000000001 3f4e5d6c-0000-4000-8000-000000000042 https://login.microsoftonline.us',
      '22222222-0000-4000-8000-000000000002 3f4e5d6c-0000-4000-8000-000000000042 https://login.microsoftonline.us',
    ]);
    expect(new Set(scopes)).toEqual(new Set(['https://graph.microsoft.us/.default']));
  });
});
