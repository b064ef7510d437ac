import { credentials, Metadata, status, type CallCredentials } from '@grpc/grpc-js';
import { TokenAcquisitionError } from './errors.js';
import type { TokenProvider } from './token-provider.js';

export interface EntraCallCredentialsOptions {
  /** Metadata key the token goes in. Default `authorization` (what entra-authz reads by default). */
  readonly header?: string;
}

/**
 * grpc-js CallCredentials that put `authorization: Bearer <token>` on every call. grpc-js only
 * sends call credentials over a secure channel, so combine them with TLS channel credentials
 * (`credentials.combineChannelCredentials(credentials.createSsl(...), entraCallCredentials(p))`).
 *
 * When no token can be had the call fails with UNAUTHENTICATED and a message naming the source and
 * the reason, never the secret.
 */
export function entraCallCredentials(provider: TokenProvider, options: EntraCallCredentialsOptions = {}): CallCredentials {
  const header = (options.header ?? 'authorization').toLowerCase();
  return credentials.createFromMetadataGenerator((_params, callback) => {
    provider.getToken().then(
      (token) => {
        const metadata = new Metadata();
        metadata.set(header, `Bearer ${token}`);
        callback(null, metadata);
      },
      (err: unknown) => {
        const error =
          err instanceof TokenAcquisitionError
            ? err
            : new TokenAcquisitionError('token provider', 'the token provider failed unexpectedly', (err as Error)?.name ?? 'Error');
        // grpc-js reads `code` from the error: UNAUTHENTICATED instead of its default UNAVAILABLE.
        callback(Object.assign(new Error(error.message), { code: status.UNAUTHENTICATED }));
      },
    );
  });
}
