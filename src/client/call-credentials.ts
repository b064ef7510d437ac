import { credentials, type CallCredentials } from '@grpc/grpc-js';
import type { TokenAcquisitionError } from './errors.js';
import { entraMetadata, type EntraMetadataOptions } from './metadata.js';
import type { TokenProvider } from './token-provider.js';

export type EntraCallCredentialsOptions = EntraMetadataOptions;

/**
 * grpc-js CallCredentials that put `authorization: Bearer <token>` on every call. grpc-js only
 * sends call credentials over a secure channel, so combine them with TLS channel credentials
 * (`credentials.combineChannelCredentials(credentials.createSsl(...), entraCallCredentials(p))`);
 * over a plaintext channel to a local sidecar use {@link entraInterceptor} instead.
 *
 * When no token can be had the call fails, before reaching the server, with a message naming the
 * source and the reason, never the secret: UNAVAILABLE when the failure is transient, which grpc-js
 * hands to the channel's retry policy (credentials run once per attempt), else UNAUTHENTICATED.
 */
export function entraCallCredentials(provider: TokenProvider, options: EntraCallCredentialsOptions = {}): CallCredentials {
  return credentials.createFromMetadataGenerator((_params, callback) => {
    entraMetadata(provider, options).then(
      (metadata) => callback(null, metadata),
      // grpc-js reads `code` from the error; without it every failure would be UNAVAILABLE.
      (error: TokenAcquisitionError) => callback(Object.assign(new Error(error.message), { code: error.code })),
    );
  });
}
