import { request } from 'node:http';
import { connect } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { echoedHeader, echoedOf, headerMap, startEchoUpstream, type EchoUpstream } from './echo.js';

let echo: EchoUpstream | undefined;
afterEach(async () => {
  await echo?.close();
  echo = undefined;
});

/** One HTTP/1.1 GET with headers given as a list, so repeats reach the upstream as separate lines. */
function get1(port: number, headers: string[]): Promise<{ headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/orders?x=1', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One h2c request; resolves with the response body and trailers. */
function post2(port: number, headers: Record<string, string>): Promise<{ body: Buffer; trailers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': '/demo.orders.v1.Orders/GetOrder', ...headers });
    const chunks: Buffer[] = [];
    let trailers: Record<string, unknown> = {};
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('end', () => {
      session.close();
      resolve({ body: Buffer.concat(chunks), trailers });
    });
    stream.end();
  });
}

describe('the echo upstream of the real-proxy suites', () => {
  it('answers an HTTP/1.1 request with its method, URL and every header line, repeats kept', async () => {
    echo = await startEchoUpstream();
    const reply = await get1(echo.port, ['Host', 'app', 'X-Entra-Oid', 'one', 'X-Entra-Oid', 'two']);
    expect(reply.headers['x-upstream']).toBe('echo');
    const seen = echoedOf(reply.body);
    expect(seen).toMatchObject({ method: 'GET', url: '/orders?x=1' });
    expect(echoedHeader(seen, 'x-entra-oid')).toEqual(['one', 'two']);
    expect(headerMap(seen)['x-entra-oid']).toBe('one,two');
    expect(echo.received).toEqual([seen]);
  });

  it('answers a gRPC call over h2c with the headers it received in a gRPC message and status 0', async () => {
    echo = await startEchoUpstream({ http2: true });
    const reply = await post2(echo.port, { 'content-type': 'application/grpc', te: 'trailers', 'x-entra-roles': 'Orders.Read' });
    expect(reply.trailers['grpc-status']).toBe('0');
    expect(reply.body[0]).toBe(0);
    expect(reply.body.readUInt32BE(1)).toBe(reply.body.length - 5);
    const seen = headerMap(echoedOf(reply.body));
    expect(seen['x-entra-roles']).toBe('Orders.Read');
    expect(seen[':path']).toBe('/demo.orders.v1.Orders/GetOrder');
  });
});
