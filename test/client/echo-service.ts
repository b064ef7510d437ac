import {
  makeGenericClientConstructor,
  type Metadata,
  Server,
  type ChannelCredentials,
  type Client,
  type ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
} from '@grpc/grpc-js';

// A one-method service with raw-bytes messages: the server answers with the authorization metadata
// it received, so a test sees exactly what went on the wire.
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

type Callback = (err: ServiceError | null, res?: Buffer) => void;
export type EchoClient = Client & { whoAmI(req: Buffer, cb: Callback): void; whoAmI(req: Buffer, md: Metadata, cb: Callback): void };
export const EchoClient = makeGenericClientConstructor(ECHO_SERVICE, 'Echo') as unknown as new (
  address: string,
  creds: ChannelCredentials,
  options?: object,
) => EchoClient;

/** The echo server on 127.0.0.1, port 0; `received` lists the authorization value of each call. */
export async function startEchoServer(serverCredentials: ServerCredentials): Promise<{ port: number; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const server = new Server();
  server.addService(ECHO_SERVICE, {
    whoAmI(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) {
      const auth = call.metadata.get('authorization').map(String).join(' | ');
      received.push(auth);
      callback(null, Buffer.from(auth));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, received, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/** One WhoAmI call: the authorization value the server saw. */
export function whoAmI(client: EchoClient): Promise<string> {
  return new Promise((resolve, reject) => client.whoAmI(Buffer.alloc(0), (err, res) => (err ? reject(err) : resolve(String(res)))));
}

/** A service config that retries UNAVAILABLE calls of the echo service (gRPC retry policy, A6). */
export const RETRY_UNAVAILABLE = JSON.stringify({
  methodConfig: [
    {
      name: [{ service: 'test.Echo' }],
      retryPolicy: { maxAttempts: 4, initialBackoff: '0.01s', maxBackoff: '0.05s', backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] },
    },
  ],
});
