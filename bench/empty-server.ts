/**
 * The baseline: a grpc-js Check handler that does nothing, on the same Envoy protos and
 * proto-loader options and grpc-js server options as the product (the request is still decoded
 * and the response encoded).
 * Run as its own process, like the product server; prints its address as one JSON line.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { GRPC_SERVER_OPTIONS } from '../src/server/grpc.js';
import { loadAuthorizationService } from '../src/server/protos.js';

const server = new Server({ ...GRPC_SERVER_OPTIONS });
server.addService(loadAuthorizationService(), {
  Check: (_call: unknown, callback: (err: null, response: unknown) => void) => callback(null, { status: { code: 0 }, ok_response: {} }),
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${JSON.stringify({ address: `127.0.0.1:${port}` })}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
