import { Metadata } from '@grpc/grpc-js';
import { TokenAcquisitionError } from './errors.js';
import type { TokenProvider } from './token-provider.js';

export interface EntraMetadataOptions {
  /** Metadata key the token goes in. Default `authorization` (what entra-authz reads by default). */
  readonly header?: string;
}

/** Any failure of a provider as a {@link TokenAcquisitionError} (providers already reject with one). */
export function asTokenAcquisitionError(err: unknown): TokenAcquisitionError {
  return err instanceof TokenAcquisitionError
    ? err
    : new TokenAcquisitionError('token provider', 'the token provider failed unexpectedly', (err as Error)?.name ?? 'Error');
}

/**
 * gRPC metadata carrying `authorization: Bearer <token>`, for one call: `client.method(req, await
 * entraMetadata(provider), callback)`. Rejects with a {@link TokenAcquisitionError}.
 */
export async function entraMetadata(provider: TokenProvider, options: EntraMetadataOptions = {}): Promise<Metadata> {
  try {
    const token = await provider.getToken();
    const metadata = new Metadata();
    metadata.set((options.header ?? 'authorization').toLowerCase(), `Bearer ${token}`);
    return metadata;
  } catch (err) {
    throw asTokenAcquisitionError(err);
  }
}
