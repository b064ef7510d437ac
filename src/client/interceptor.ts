import { InterceptingCall, Metadata, type Interceptor } from '@grpc/grpc-js';
import type { TokenAcquisitionError } from './errors.js';
import { entraMetadata, type EntraMetadataOptions } from './metadata.js';
import type { TokenProvider } from './token-provider.js';

/**
 * A grpc-js client interceptor that adds `authorization: Bearer <token>` to every call, for
 * plaintext channels (`credentials.createInsecure()`, e.g. to a sidecar on localhost), where grpc-js
 * refuses call credentials. Pass it as `new Client(address, credentials.createInsecure(), {
 * interceptors: [entraInterceptor(provider)] })`.
 *
 * When no token can be had the call ends with UNAVAILABLE (transient) or UNAUTHENTICATED and never
 * reaches the server. Interceptors run above grpc-js's retry layer, so a channel retry policy does
 * not retry these failures: retry UNAVAILABLE in the application, or use call credentials over TLS.
 */
export function entraInterceptor(provider: TokenProvider, options: EntraMetadataOptions = {}): Interceptor {
  return (callOptions, nextCall) => {
    const call = nextCall(callOptions);
    return new InterceptingCall(call, {
      start(metadata, listener, next) {
        entraMetadata(provider, options).then(
          (tokenMetadata) => {
            // set, not merge: a caller's own authorization value must not travel alongside.
            for (const [key, value] of Object.entries(tokenMetadata.getMap())) metadata.set(key, value);
            next(metadata, listener);
          },
          (error: TokenAcquisitionError) => {
            // The inner call was never started: end it (clearing its deadline timer) and tell the caller.
            call.cancelWithStatus(error.code, error.message);
            listener.onReceiveStatus({ code: error.code, details: error.message, metadata: new Metadata() });
          },
        );
      },
    });
  };
}
