import { credentials, Metadata, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clientCredentialsTokenSource, createTokenProvider, entraInterceptor, entraMetadata, type TokenProvider } from '../../src/client/index.js';
import { EchoClient, RETRY_UNAVAILABLE, startEchoServer, whoAmI } from './echo-service.js';
import { startTokenEndpoint, type TokenEndpoint } from './token-endpoint.js';

const SECRET = 'plaintext-test-secret';
const tokenAnswer = (token: string) => ({ status: 200, body: JSON.stringify({ token_type: 'Bearer', expires_in: 3599, access_token: token }) });

let echo: Awaited<ReturnType<typeof startEchoServer>>;
let endpoint: TokenEndpoint;

beforeAll(async () => {
  echo = await startEchoServer(ServerCredentials.createInsecure());
});
afterAll(async () => {
  await echo.close();
});
beforeEach(async () => {
  endpoint = await startTokenEndpoint();
});
afterEach(async () => {
  await endpoint.close();
});

const providerFor = (tokenEndpoint: string): TokenProvider =>
  createTokenProvider({ source: clientCredentialsTokenSource({ tokenEndpoint, clientId: 'sidecar-caller', clientSecret: SECRET, scope: 'api://orders/.default' }) });

const plaintextClient = (provider: TokenProvider, options: object = {}): EchoClient =>
  new EchoClient(`127.0.0.1:${echo.port}`, credentials.createInsecure(), { interceptors: [entraInterceptor(provider)], ...options });

describe('calling a local sidecar over plaintext', () => {
  it('attaches the bearer token to every call with the interceptor, acquiring it once', async () => {
    endpoint.reply = () => tokenAnswer('at-plaintext');
    const client = plaintextClient(providerFor(endpoint.url));
    expect(await Promise.all([whoAmI(client), whoAmI(client), whoAmI(client)])).toEqual(Array(3).fill('Bearer at-plaintext'));
    expect(endpoint.requests).toHaveLength(1);
    client.close();
  });

  it('replaces an authorization value the caller set on the call, so only the Entra token travels', async () => {
    endpoint.reply = () => tokenAnswer('at-replaces');
    const client = plaintextClient(providerFor(endpoint.url));
    const md = new Metadata();
    md.set('authorization', 'Bearer stale-value');
    const seen = await new Promise<string>((resolve, reject) => client.whoAmI(Buffer.alloc(0), md, (err, res) => (err ? reject(err) : resolve(String(res)))));
    expect(seen).toBe('Bearer at-replaces');
    client.close();
  });

  it('ends the call with UNAVAILABLE when the token endpoint cannot be reached, without reaching the server', async () => {
    const unreachable = endpoint.url;
    await endpoint.close(); // connection refused from now on
    const before = echo.received.length;
    const client = plaintextClient(providerFor(unreachable), { 'grpc.service_config': RETRY_UNAVAILABLE });
    const err = (await whoAmI(client).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('could not acquire an Entra access token');
    expect(err.details).toContain('ECONNREFUSED');
    expect(echo.received.length).toBe(before);
    client.close();
    endpoint = await startTokenEndpoint(); // for afterEach
  });

  it('ends the call with UNAUTHENTICATED when the credential is refused, naming the client but not the secret', async () => {
    endpoint.reply = () => ({ status: 401, body: JSON.stringify({ error: 'invalid_client', error_description: `AADSTS7000215: bad secret ${SECRET}` }) });
    const client = plaintextClient(providerFor(endpoint.url));
    const err = (await whoAmI(client).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.details).toContain('client sidecar-caller');
    expect(err.details).toContain('invalid_client');
    expect(err.details).not.toContain(SECRET);
    client.close();
  });

  it('is not retried by a channel retry policy (interceptors run above it): the caller sees the first failure', async () => {
    let answers = 0;
    endpoint.reply = () => (++answers === 1 ? { status: 503, body: '{}' } : tokenAnswer('at-late'));
    const provider = createTokenProvider({
      retryAfterTransientFailureMs: 0,
      source: clientCredentialsTokenSource({ tokenEndpoint: endpoint.url, clientId: 'sidecar-caller', clientSecret: SECRET, scope: 'api://orders/.default' }),
    });
    const client = plaintextClient(provider, { 'grpc.service_config': RETRY_UNAVAILABLE });
    const err = (await whoAmI(client).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(endpoint.requests).toHaveLength(1);
    // The application's own retry then succeeds.
    expect(await whoAmI(client)).toBe('Bearer at-late');
    client.close();
  });

  it('gives per-call metadata with entraMetadata, for callers that pass metadata themselves', async () => {
    endpoint.reply = () => tokenAnswer('at-per-call');
    const client = new EchoClient(`127.0.0.1:${echo.port}`, credentials.createInsecure());
    const md = await entraMetadata(providerFor(endpoint.url));
    const seen = await new Promise<string>((resolve, reject) => client.whoAmI(Buffer.alloc(0), md, (err, res) => (err ? reject(err) : resolve(String(res)))));
    expect(seen).toBe('Bearer at-per-call');
    client.close();
  });
});
