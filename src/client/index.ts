/**
 * Caller-side helper for services that call through an Envoy guarded by entra-authz: gRPC
 * CallCredentials carrying an Entra access token that is held in memory and refreshed before it
 * expires. A separate entry point: it imports nothing from the server.
 *
 * ```ts
 * const source = credentialTokenSource(createAzureCredential({ kind: 'managedIdentity' }), {
 *   scope: defaultScope('api://orders'),
 * });
 * const callCreds = entraCallCredentials(createTokenProvider({ source }));
 * const channelCreds = credentials.combineChannelCredentials(credentials.createSsl(ca, key, cert), callCreds);
 * ```
 */
export { TokenAcquisitionError } from './errors.js';
export {
  createTokenProvider,
  systemClock,
  type AccessTokenInfo,
  type Clock,
  type TokenProvider,
  type TokenProviderOptions,
  type TokenSource,
} from './token-provider.js';
export {
  clientCredentialsTokenSource,
  credentialTokenSource,
  defaultScope,
  type ClientCredentialsOptions,
  type CredentialSourceOptions,
} from './sources.js';
export { createAzureCredential, type AzureCredentialSpec } from './azure.js';
export { entraCallCredentials, type EntraCallCredentialsOptions } from './call-credentials.js';
