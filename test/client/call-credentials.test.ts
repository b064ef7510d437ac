import { credentials, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clientCredentialsTokenSource,
  createTokenProvider,
  credentialTokenSource,
  entraCallCredentials,
  type TokenProvider,
} from '../../src/client/index.js';
import { EchoClient, RETRY_UNAVAILABLE, startEchoServer, whoAmI as call } from './echo-service.js';
import { FakeCredential, ManualClock } from './fakes.js';
import { makeSelfSignedCert, type TestCert } from './tls-fixture.js';
import { startTokenEndpoint } from './token-endpoint.js';

let echo: Awaited<ReturnType<typeof startEchoServer>>;
let cert: TestCert;

beforeAll(async () => {
  cert = makeSelfSignedCert({ cn: 'localhost', dns: ['localhost'] });
  echo = await startEchoServer(
    ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(cert.certPem), private_key: Buffer.from(cert.keyPem) }], false),
  );
});

afterAll(async () => {
  await echo.close();
});

function clientWith(provider: TokenProvider, options: object = {}): EchoClient {
  const channel = credentials.combineChannelCredentials(credentials.createSsl(Buffer.from(cert.certPem)), entraCallCredentials(provider));
  return new EchoClient(`127.0.0.1:${echo.port}`, channel, { 'grpc.ssl_target_name_override': 'localhost', ...options });
}

describe('Entra call credentials', () => {
  it('puts the bearer token on every call and acquires it once for many calls', async () => {
    const clock = new ManualClock(Date.now());
    const credential = new FakeCredential();
    const provider = createTokenProvider({ clock, source: credentialTokenSource(credential, { scope: 'api://x/.default' }) });
    const client = clientWith(provider);
    const calls = [call(client), call(client), call(client)];
    await new Promise<void>((resolve) => {
      const poll = (): void => (credential.calls.length > 0 ? resolve() : void setImmediate(poll));
      poll();
    });
    credential.answer({ token: 'token-for-calls', expiresOnTimestamp: clock.now() + 3600_000 });
    expect(await Promise.all(calls)).toEqual(Array(3).fill('Bearer token-for-calls'));
    expect(credential.calls).toHaveLength(1);
    client.close();
  });

  it('fails the call with UNAUTHENTICATED, naming the source but not the secret, without reaching the server', async () => {
    const endpoint = await startTokenEndpoint();
    const secret = 'never-show-this-secret';
    endpoint.reply = () => ({ status: 400, body: JSON.stringify({ error: 'unauthorized_client', error_description: 'AADSTS700016: nope' }) });
    const before = echo.received.length;
    try {
      const provider = createTokenProvider({
        source: clientCredentialsTokenSource({ tokenEndpoint: endpoint.url, clientId: 'demo-client', clientSecret: secret, scope: 'api://x/.default' }),
      });
      const client = clientWith(provider);
      const err = (await call(client).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(status.UNAUTHENTICATED);
      expect(err.details).toContain('could not acquire an Entra access token');
      expect(err.details).toContain('client demo-client');
      expect(err.details).toContain('unauthorized_client');
      expect(err.details).not.toContain(secret);
      expect(err.message).not.toContain(secret);
      expect(echo.received.slice(before)).toEqual([]);
      client.close();
    } finally {
      await endpoint.close();
    }
  });

  it('fails with UNAVAILABLE when the token endpoint is down, so the channel retry policy retries the call until it succeeds', async () => {
    const endpoint = await startTokenEndpoint();
    let answers = 0;
    endpoint.reply = () =>
      ++answers <= 2
        ? { status: 503, body: JSON.stringify({ error: 'temporarily_unavailable' }) }
        : { status: 200, body: JSON.stringify({ token_type: 'Bearer', expires_in: 3599, access_token: 'at-after-outage' }) };
    try {
      // retryAfterTransientFailureMs 0: the test retries within milliseconds; the default 1 s only spaces real retries.
      const provider = () =>
        createTokenProvider({
          retryAfterTransientFailureMs: 0,
          source: clientCredentialsTokenSource({ tokenEndpoint: endpoint.url, clientId: 'demo-client', clientSecret: 's', scope: 'api://x/.default' }),
        });
      const plain = clientWith(provider());
      const err = (await call(plain).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toContain('HTTP 503');
      plain.close();

      const before = echo.received.length;
      const retrying = clientWith(provider(), { 'grpc.service_config': RETRY_UNAVAILABLE });
      expect(await call(retrying)).toBe('Bearer at-after-outage');
      expect(endpoint.requests).toHaveLength(3);
      expect(echo.received.slice(before)).toEqual(['Bearer at-after-outage']);
      retrying.close();
    } finally {
      await endpoint.close();
    }
  });
});
