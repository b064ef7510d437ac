import {
  ClientCertificateCredential,
  ClientSecretCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
  type TokenCredential,
} from '@azure/identity';

/** The credential kinds a service calling through Envoy typically runs with. */
export type AzureCredentialSpec =
  | { readonly kind: 'managedIdentity'; readonly clientId?: string }
  | { readonly kind: 'workloadIdentity'; readonly clientId?: string; readonly tenantId?: string; readonly tokenFilePath?: string }
  | { readonly kind: 'clientSecret'; readonly tenantId: string; readonly clientId: string; readonly clientSecret: string; readonly authorityHost?: string }
  | {
      readonly kind: 'clientCertificate';
      readonly tenantId: string;
      readonly clientId: string;
      /** PEM file holding the certificate and its private key. */
      readonly certificatePath: string;
      /** Send the x5c chain (needed for subject-name/issuer auth). */
      readonly sendCertificateChain?: boolean;
      readonly authorityHost?: string;
    };

/**
 * Builds an @azure/identity credential. Tokens stay in the credential's in-memory cache: no
 * `tokenCachePersistenceOptions` is ever passed. With no arguments given, workload identity reads
 * AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_FEDERATED_TOKEN_FILE as the AKS webhook sets them.
 */
export function createAzureCredential(spec: AzureCredentialSpec): TokenCredential {
  switch (spec.kind) {
    case 'managedIdentity':
      return spec.clientId !== undefined ? new ManagedIdentityCredential({ clientId: spec.clientId }) : new ManagedIdentityCredential();
    case 'workloadIdentity':
      return new WorkloadIdentityCredential({
        ...(spec.clientId !== undefined ? { clientId: spec.clientId } : {}),
        ...(spec.tenantId !== undefined ? { tenantId: spec.tenantId } : {}),
        ...(spec.tokenFilePath !== undefined ? { tokenFilePath: spec.tokenFilePath } : {}),
      });
    case 'clientSecret':
      return new ClientSecretCredential(spec.tenantId, spec.clientId, spec.clientSecret, {
        ...(spec.authorityHost !== undefined ? { authorityHost: spec.authorityHost } : {}),
      });
    case 'clientCertificate':
      return new ClientCertificateCredential(
        spec.tenantId,
        spec.clientId,
        { certificatePath: spec.certificatePath },
        {
          ...(spec.sendCertificateChain !== undefined ? { sendCertificateChain: spec.sendCertificateChain } : {}),
          ...(spec.authorityHost !== undefined ? { authorityHost: spec.authorityHost } : {}),
        },
      );
  }
}
