/**
 * The server's own access tokens for Microsoft Graph, through @azure/identity (client secret,
 * certificate, workload identity, managed identity). The library is an optional package, loaded
 * only when `entra.graph` is configured, and then at start: a missing package stops the server
 * with the instruction to install it instead of failing every group lookup later. Credentials are
 * built once per tenant and keep their own token cache.
 */
import type { GraphConfig } from '../../config/schema.js';

interface AccessTokenSource {
  getToken(scope: string): Promise<{ token: string } | null>;
}

export type AzureIdentity = typeof import('@azure/identity');
type Identity = AzureIdentity;

/** Loads @azure/identity, or rejects with what to install; `load` is replaceable for tests. */
export async function loadAzureIdentity(load: () => Promise<AzureIdentity> = () => import('@azure/identity')): Promise<AzureIdentity> {
  try {
    return await load();
  } catch {
    throw new Error(
      'entra.graph needs the package @azure/identity, which the lean install leaves out: ' +
        'run `npm install --omit=dev @azure/identity` where the server runs (docs/deployment.md)',
    );
  }
}

function credentialFor(identity: Identity, setting: GraphConfig['credential'], tenantId: string, authorityHost: string): AccessTokenSource {
  switch (setting.kind) {
    case 'clientSecret':
      return new identity.ClientSecretCredential(tenantId, setting.clientId, setting.clientSecret, { authorityHost });
    case 'certificate':
      return new identity.ClientCertificateCredential(tenantId, setting.clientId, { certificatePath: setting.certificatePath }, { authorityHost });
    case 'workloadIdentity':
      return new identity.WorkloadIdentityCredential({ tenantId, authorityHost, ...(setting.clientId !== undefined ? { clientId: setting.clientId } : {}) });
    case 'managedIdentity':
      // A managed identity lives in one tenant: the tenant of the token is not passed.
      return setting.clientId !== undefined ? new identity.ManagedIdentityCredential({ clientId: setting.clientId }) : new identity.ManagedIdentityCredential();
  }
}

/** `graphToken(tenant)` for the group resolver. Rejects when no token can be had (the lookup then fails closed). */
export function createGraphTokenSource(graph: GraphConfig, authorityHost: string, identity: Identity): (tenant: string) => Promise<string> {
  const credentials = new Map<string, AccessTokenSource>();
  const scope = `${graph.endpoint}/.default`;
  return async (tenant) => {
    let credential = credentials.get(tenant);
    if (credential === undefined) {
      credential = credentialFor(identity, graph.credential, tenant, authorityHost);
      credentials.set(tenant, credential);
    }
    const token = await credential.getToken(scope);
    if (token === null) throw new Error('no Graph access token');
    return token.token;
  };
}
