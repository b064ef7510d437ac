import { createRequire } from 'node:module';
import type * as AzureIdentity from '@azure/identity';
import type { TokenCredential } from './sources.js';

/** The credential kinds a service calling through Envoy typically runs with. */
export type AzureCredentialSpec =
  /**
   * @azure/identity's `DefaultAzureCredential`: environment variables, workload identity, managed
   * identity, then developer tools (Azure CLI, azd, ...), the first that works. Convenient from a
   * laptop to AKS; set `AZURE_TOKEN_CREDENTIALS=prod` in production to skip the developer tools.
   */
  | {
      readonly kind: 'default';
      /** Client id of a user-assigned managed identity. */
      readonly managedIdentityClientId?: string;
      /** Client id for workload identity when AZURE_CLIENT_ID is not the one to use. */
      readonly workloadIdentityClientId?: string;
      readonly tenantId?: string;
    }
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
 * Loads @azure/identity, an optional peer dependency: only callers that build credentials with it
 * need it installed, and the server never does.
 *
 * @param resolveFrom where module resolution starts (tests point it at a directory without it).
 * @returns the module, untyped here so that the entry's declarations never name @azure/identity.
 */
export function loadAzureIdentity(resolveFrom: string | URL = import.meta.url): unknown {
  try {
    return createRequire(resolveFrom)('@azure/identity');
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'MODULE_NOT_FOUND') throw err;
    throw new Error(
      'createAzureCredential needs the @azure/identity package, which is not installed: run `npm install @azure/identity` ' +
        'in the calling service (or use clientCredentialsTokenSource, which needs no extra package)',
    );
  }
}

const defined = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/**
 * Builds an @azure/identity credential. Tokens stay in the credential's in-memory cache: no
 * `tokenCachePersistenceOptions` is ever passed. With no arguments given, workload identity reads
 * AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_FEDERATED_TOKEN_FILE as the AKS webhook sets them.
 * Without a spec: `DefaultAzureCredential`.
 *
 * @throws Error naming the missing package when @azure/identity is not installed.
 */
export function createAzureCredential(spec: AzureCredentialSpec = { kind: 'default' }): TokenCredential {
  const identity = loadAzureIdentity() as typeof AzureIdentity;
  switch (spec.kind) {
    case 'default':
      return new identity.DefaultAzureCredential(
        defined({ managedIdentityClientId: spec.managedIdentityClientId, workloadIdentityClientId: spec.workloadIdentityClientId, tenantId: spec.tenantId }),
      );
    case 'managedIdentity':
      return spec.clientId !== undefined ? new identity.ManagedIdentityCredential({ clientId: spec.clientId }) : new identity.ManagedIdentityCredential();
    case 'workloadIdentity':
      return new identity.WorkloadIdentityCredential(defined({ clientId: spec.clientId, tenantId: spec.tenantId, tokenFilePath: spec.tokenFilePath }));
    case 'clientSecret':
      return new identity.ClientSecretCredential(spec.tenantId, spec.clientId, spec.clientSecret, defined({ authorityHost: spec.authorityHost }));
    case 'clientCertificate':
      return new identity.ClientCertificateCredential(
        spec.tenantId,
        spec.clientId,
        { certificatePath: spec.certificatePath },
        defined({ sendCertificateChain: spec.sendCertificateChain, authorityHost: spec.authorityHost }),
      );
  }
}
