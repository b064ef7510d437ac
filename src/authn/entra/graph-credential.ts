/**
 * The server's own access tokens for Microsoft Graph, through @azure/identity (client secret,
 * certificate, workload identity, managed identity). The library is loaded on first use, so a
 * deployment that never resolves group overage does not load it. Credentials are built once per
 * tenant and keep their own token cache.
 */
import type { GraphConfig } from '../../config/schema.js';

interface AccessTokenSource {
  getToken(scope: string): Promise<{ token: string } | null>;
}

type Identity = typeof import('@azure/identity');

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
export function createGraphTokenSource(graph: GraphConfig, authorityHost: string): (tenant: string) => Promise<string> {
  let identity: Promise<Identity> | undefined;
  const credentials = new Map<string, AccessTokenSource>();
  const scope = `${graph.endpoint}/.default`;
  return async (tenant) => {
    identity ??= import('@azure/identity');
    const lib = await identity;
    let credential = credentials.get(tenant);
    if (credential === undefined) {
      credential = credentialFor(lib, graph.credential, tenant, authorityHost);
      credentials.set(tenant, credential);
    }
    const token = await credential.getToken(scope);
    if (token === null) throw new Error('no Graph access token');
    return token.token;
  };
}
