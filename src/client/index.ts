/**
 * Caller-side helper for services that call through an Envoy guarded by entra-authz: an Entra
 * access token held in memory and refreshed before it expires, attached to gRPC calls as call
 * credentials (TLS channels), by an interceptor (plaintext channels to a local sidecar) or as
 * per-call metadata. A separate entry point: it imports nothing from the server. `@azure/identity`
 * is an optional peer dependency, needed only by `createAzureCredential`.
 *
 * ```ts
 * const source = credentialTokenSource(createAzureCredential(), { scope: defaultScope('api://orders') });
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
  type TokenCredential,
} from './sources.js';
export { createAzureCredential, type AzureCredentialSpec } from './azure.js';
export { entraCallCredentials, type EntraCallCredentialsOptions } from './call-credentials.js';
export { entraMetadata, type EntraMetadataOptions } from './metadata.js';
export { entraInterceptor } from './interceptor.js';
