import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { listenOnLoopback } from './loopback.js';

/** What the echo upstream received: method, URL and every header as sent (lower-case names, repeats kept). */
export interface Echoed {
  readonly method: string;
  readonly url: string;
  readonly headers: readonly (readonly [string, string])[];
}

export interface EchoUpstream {
  readonly port: number;
  /** Every request received so far, oldest first. */
  readonly received: readonly Echoed[];
  close(): Promise<void>;
}

/** One gRPC message frame: uncompressed flag, 4-byte big-endian length, payload. */
export function grpcFrame(payload: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

function echoed(req: IncomingMessage | Http2ServerRequest): Echoed {
  const headers: [string, string][] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([(req.rawHeaders[i] ?? '').toLowerCase(), req.rawHeaders[i + 1] ?? '']);
  return { method: req.method ?? '', url: req.url ?? '', headers };
}

/**
 * An upstream on 127.0.0.1 that answers every request with what it received, as JSON: in a gRPC
 * message for gRPC requests, plain otherwise. HTTP/1.1, or h2c with `http2` (what Envoy's gRPC
 * clusters speak).
 */
export async function startEchoUpstream(options: { http2?: boolean } = {}): Promise<EchoUpstream> {
  const received: Echoed[] = [];
  const answer = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    const seen = echoed(req);
    received.push(seen);
    const body = Buffer.from(JSON.stringify(seen));
    req.resume();
    req.on('end', () => {
      if (String(req.headers['content-type'] ?? '').startsWith('application/grpc')) {
        res.writeHead(200, { 'content-type': 'application/grpc' });
        res.addTrailers({ 'grpc-status': '0' });
        res.end(grpcFrame(body));
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'echo' });
        res.end(body);
      }
    });
  };
  const server = options.http2 ? createHttp2Server(answer) : createHttp1Server(answer);
  return {
    port: await listenOnLoopback(server),
    received,
    close: () =>
      new Promise<void>((resolve) => {
        if ('closeAllConnections' in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The values the echo upstream saw for `name` (lower-case). */
export const echoedHeader = (seen: Echoed, name: string): string[] => seen.headers.filter(([k]) => k === name).map(([, v]) => v);

/** What the echo upstream reported in a response body, gRPC-framed or plain JSON. */
export function echoedOf(body: string | Buffer): Echoed {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
  const json = bytes[0] === 0 ? bytes.subarray(5) : bytes;
  return JSON.parse(json.toString('utf8')) as Echoed;
}

/** Request headers as one map: lower-case name to value. */
export type HeaderMap = Readonly<Record<string, string>>;

/** The headers of an echoed request as one map, repeated headers joined with `,` as Envoy joins them. */
export function headerMap(seen: Echoed): HeaderMap {
  const map: Record<string, string> = {};
  for (const [k, v] of seen.headers) map[k] = k in map ? `${map[k]},${v}` : v;
  return map;
}
