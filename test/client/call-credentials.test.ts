import {
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  status,
  type ServiceDefinition,
  type ServiceError,
  type ServerUnaryCall,
  type sendUnaryData,
  type Client,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  clientCredentialsTokenSource,
  createTokenProvider,
  credentialTokenSource,
  entraCallCredentials,
  type TokenProvider,
} from '../../src/client/index.js';
import { FakeCredential, ManualClock } from './fakes.js';
import { makeSelfSignedCert, type TestCert } from './tls-fixture.js';
import { startTokenEndpoint } from './token-endpoint.js';

// A one-method service with raw-bytes messages: the server answers with the authorization metadata
// it received, so the test sees exactly what went on the wire.
const identity = (b: Buffer): Buffer => b;
const ECHO_SERVICE: ServiceDefinition = {
  whoAmI: {
    path: '/test.Echo/WhoAmI',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
type EchoClient = Client & { whoAmI(req: Buffer, cb: (err: ServiceError | null, res?: Buffer) => void): void };
const EchoClient = makeGenericClientConstructor(ECHO_SERVICE, 'Echo') as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createSsl>,
  options?: object,
) => EchoClient;

let server: Server;
let port = 0;
let cert: TestCert;
let received: string[] = [];

beforeAll(async () => {
  cert = makeSelfSignedCert({ cn: 'localhost', dns: ['localhost'] });
  server = new Server();
  server.addService(ECHO_SERVICE, {
    whoAmI(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) {
      const auth = String(call.metadata.get('authorization')[0] ?? '');
      received.push(auth);
      callback(null, Buffer.from(auth));
    },
  });
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(cert.certPem), private_key: Buffer.from(cert.keyPem) }], false),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
});

beforeEach(() => {
  received = [];
});

function clientWith(provider: TokenProvider): EchoClient {
  const channel = credentials.combineChannelCredentials(credentials.createSsl(Buffer.from(cert.certPem)), entraCallCredentials(provider));
  return new EchoClient(`127.0.0.1:${port}`, channel, { 'grpc.ssl_target_name_override': 'localhost' });
}

function call(client: EchoClient): Promise<string> {
  return new Promise((resolve, reject) => client.whoAmI(Buffer.alloc(0), (err, res) => (err ? reject(err) : resolve(String(res)))));
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
      expect(received).toEqual([]);
      client.close();
    } finally {
      await endpoint.close();
    }
  });
});
