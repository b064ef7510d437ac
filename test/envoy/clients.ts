import { credentials, makeGenericClientConstructor, Metadata, type ServiceError } from '@grpc/grpc-js';
import { request as httpsRequest } from 'node:https';
import { connect, constants } from 'node:http2';
import { echoedOf, headerMap, type HeaderMap } from '../support/echo.js';

/** A client's TLS identity toward Envoy's mTLS listener. */
export interface ClientTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Envoy's listener certificate names `localhost` (scripts/gen-certs.sh). */
const SERVER_NAME = 'localhost';
const TIMEOUT_MS = 10_000;

const flatten = (h: Record<string, string | string[] | number | undefined>): Record<string, string> =>
  Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : String(v)]));

/** One HTTP/1.1 request over TLS (a fresh connection). The body is read as latin1: byte for byte. */
export function http1(port: number, tls: ClientTls, opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, servername: SERVER_NAME, ...tls, agent: false, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers ?? {}, timeout: TIMEOUT_MS },
      (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: flatten(res.headers), body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('HTTP/1.1 request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** One HTTP/2 request over TLS (a fresh connection). */
export function http2(port: number, tls: ClientTls, opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const session = connect(`https://127.0.0.1:${port}`, { ...tls, servername: SERVER_NAME });
    session.on('error', reject);
    session.setTimeout(TIMEOUT_MS, () => session.destroy(new Error('HTTP/2 request timed out')));
    const stream = session.request({ [constants.HTTP2_HEADER_METHOD]: opts.method ?? 'GET', [constants.HTTP2_HEADER_PATH]: opts.path, ...opts.headers });
    let headers: Record<string, string> = {};
    let body = '';
    stream.setEncoding('latin1');
    stream.on('response', (h) => (headers = flatten(h)));
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => {
      session.close();
      resolve({ status: Number(headers[':status']), headers, body });
    });
    stream.on('error', (err) => {
      session.destroy();
      reject(err);
    });
    stream.end(opts.body);
  });
}

export type GrpcAnswer =
  | { readonly ok: true; readonly upstream: HeaderMap }
  | { readonly ok: false; readonly code: number; readonly details: string; readonly metadata: Readonly<Record<string, string>> };

const GenericClient = makeGenericClientConstructor({}, 'Envoy');

/**
 * A unary gRPC call with grpc-js over mTLS to Envoy, to a method of the demo Orders service; the
 * echo upstream answers with the headers it received.
 */
export function grpcCall(port: number, tls: ClientTls, method: string, metadata: Record<string, string> = {}): Promise<GrpcAnswer> {
  const client = new GenericClient(
    `127.0.0.1:${port}`,
    credentials.createSsl(Buffer.from(tls.ca), Buffer.from(tls.key), Buffer.from(tls.cert)),
    { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME },
  );
  const md = new Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/demo.orders.v1.Orders/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      md,
      { deadline: Date.now() + TIMEOUT_MS },
      (err: ServiceError | null, value?: Buffer) => {
        client.close();
        if (err) resolve({ ok: false, code: err.code, details: err.details, metadata: flatten(err.metadata.getMap() as Record<string, string>) });
        else resolve({ ok: true, upstream: headerMap(echoedOf(value ?? Buffer.alloc(0))) });
      },
    );
  });
}
