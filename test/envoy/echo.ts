import { createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';

/** What the upstream received: the request headers, as Envoy forwarded them. */
export type Received = Readonly<Record<string, string>>;

export interface EchoUpstream {
  readonly port: number;
  /** Every request received so far, oldest first. */
  readonly received: readonly Received[];
  close(): Promise<void>;
}

/** One gRPC message frame: uncompressed flag, 4-byte big-endian length, payload. */
export function grpcFrame(payload: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

const flatten = (headers: IncomingHttpHeaders): Received =>
  Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : String(v)]));

/**
 * An h2c upstream (Envoy's clusters speak HTTP/2 to it) that answers every request with the
 * headers it received as JSON: a gRPC response for gRPC requests, plain JSON otherwise.
 */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  const received: Received[] = [];
  const server = createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const seen = flatten(headers);
    received.push(seen);
    const body = Buffer.from(JSON.stringify(seen));
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () => {
      if (String(headers['content-type'] ?? '').startsWith('application/grpc')) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(grpcFrame(body));
      } else {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(body);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The headers the echo upstream reported in a response body (gRPC-framed or plain JSON). */
export function upstreamOf(body: string | Buffer): Received {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
  const json = bytes[0] === 0 ? bytes.subarray(5) : bytes;
  return JSON.parse(json.toString('utf8')) as Received;
}
