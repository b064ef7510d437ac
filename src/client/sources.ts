import { isTransientHttpStatus, redact, TokenAcquisitionError } from './errors.js';
import { systemClock, type AccessTokenInfo, type Clock, type TokenSource } from './token-provider.js';

/** `api://my-api` or a client-id GUID → the client-credentials scope `api://my-api/.default`. */
export function defaultScope(resource: string): string {
  return resource.endsWith('/.default') ? resource : `${resource.replace(/\/+$/, '')}/.default`;
}

/**
 * The part of @azure/identity's `TokenCredential` this package uses, declared here so that the
 * entry's types do not require @azure/identity to be installed.
 */
export interface TokenCredential {
  getToken(
    scopes: string | string[],
    options?: { abortSignal?: AbortSignal; tenantId?: string },
  ): Promise<{ token: string; expiresOnTimestamp: number; refreshAfterTimestamp?: number } | null>;
}

export interface CredentialSourceOptions {
  /** Scope to ask for, e.g. `api://entra-authz-demo/.default` (see {@link defaultScope}). */
  readonly scope: string;
  /** Replaces the default description in error messages. */
  readonly description?: string;
  /** Passed to getToken (multi-tenant credentials). */
  readonly tenantId?: string;
}

/**
 * Tokens from any @azure/identity `TokenCredential`: ManagedIdentityCredential,
 * WorkloadIdentityCredential, ClientSecretCredential, ClientCertificateCredential, ... The credential
 * keeps its own in-memory MSAL cache; nothing is persisted unless the credential was explicitly
 * built with `tokenCachePersistenceOptions`, which this package never does.
 */
export function credentialTokenSource(credential: TokenCredential, options: CredentialSourceOptions): TokenSource {
  const description = options.description ?? `${credential.constructor?.name ?? 'TokenCredential'} for scope ${options.scope}`;
  return {
    description,
    async fetchToken(signal: AbortSignal): Promise<AccessTokenInfo> {
      const token = await credential.getToken(options.scope, {
        abortSignal: signal,
        ...(options.tenantId !== undefined ? { tenantId: options.tenantId } : {}),
      });
      if (token === null) throw new TokenAcquisitionError(description, 'the credential returned no token', 'TypeError');
      return {
        token: token.token,
        expiresAt: token.expiresOnTimestamp,
        ...(token.refreshAfterTimestamp !== undefined ? { refreshAt: token.refreshAfterTimestamp } : {}),
      };
    },
  };
}

export interface ClientCredentialsOptions {
  /** `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, or the local emulator's. */
  readonly tokenEndpoint: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scope: string;
  /**
   * Allow a plain-http endpoint that is not on loopback (the compose demo's emulator). Off by
   * default: the client secret would cross the network in clear text.
   */
  readonly allowInsecureHttp?: boolean;
  readonly clock?: Clock;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Tokens from an OAuth 2.0 client-credentials endpoint (RFC 6749 §4.4, Entra's v2.0 token endpoint
 * shape): `client_secret` is sent in the form body, the response's `expires_in` sets the expiry.
 */
export function clientCredentialsTokenSource(options: ClientCredentialsOptions): TokenSource {
  const url = new URL(options.tokenEndpoint);
  const description = `client credentials for client ${options.clientId} at ${url.origin}${url.pathname}`;
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && (LOOPBACK.has(url.hostname) || options.allowInsecureHttp))) {
    throw new TokenAcquisitionError(description, 'refusing to send a client secret over plain http (set allowInsecureHttp for a private test network)');
  }
  const clock = options.clock ?? systemClock;
  const doFetch = options.fetch ?? fetch;
  const fail = (reason: string, name = 'Error', transient = false): TokenAcquisitionError =>
    new TokenAcquisitionError(description, redact(reason, [options.clientSecret]), name, transient);

  return {
    description,
    secrets: [options.clientSecret],
    async fetchToken(signal: AbortSignal): Promise<AccessTokenInfo> {
      const requestedAt = clock.now();
      const body = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: options.clientId,
        client_secret: options.clientSecret,
        scope: options.scope,
      });
      const response = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal,
        redirect: 'error',
      });
      const text = await response.text();
      let json: Record<string, unknown> = {};
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
      } catch {
        // handled below: a non-JSON answer is described by its status only
      }
      if (!response.ok) {
        const error = typeof json['error'] === 'string' ? json['error'] : 'no error code';
        const detail = typeof json['error_description'] === 'string' ? `: ${json['error_description'].split(/\r?\n/)[0]}` : '';
        throw fail(`the token endpoint answered HTTP ${response.status} (${error}${detail})`, 'HttpError', isTransientHttpStatus(response.status));
      }
      const token = json['access_token'];
      const expiresIn = Number(json['expires_in']);
      if (typeof token !== 'string' || token.length === 0) throw fail('the token endpoint answered without access_token', 'TypeError');
      if (!Number.isFinite(expiresIn) || expiresIn <= 0) throw fail('the token endpoint answered without a valid expires_in', 'TypeError');
      const tokenType = typeof json['token_type'] === 'string' ? json['token_type'] : 'Bearer';
      if (tokenType.toLowerCase() !== 'bearer') throw fail(`unsupported token_type ${JSON.stringify(tokenType.slice(0, 32))}`, 'TypeError');
      // Counted from when the request was sent, so network time shortens, never lengthens, the lifetime.
      return { token, expiresAt: requestedAt + expiresIn * 1000 };
    },
  };
}
