import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuthorizationService } from '../../src/server/protos.js';
import {
  buildCheckRequest,
  buildCheckRequests,
  envoyUrlEncodePem,
  readEnvoyShape,
  SIDECAR_CONFIG,
  xfccElement,
  type EnvoyCheckRequest,
} from './envoy-shape.js';
import { runGenCerts } from './helpers.js';

let dir: string;
let clientCertPem: string;
let proxyCertPem: string;

beforeAll(() => {
  dir = runGenCerts().dir;
  clientCertPem = readFileSync(join(dir, 'demo-client.crt'), 'utf8');
  proxyCertPem = readFileSync(join(dir, 'envoy.crt'), 'utf8');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Parses an XFCC element into its key/value pairs (values unquoted). */
function parseXfcc(element: string): [string, string][] {
  const out: [string, string][] = [];
  const re = /([A-Za-z]+)=("(?:[^"\\]|\\.)*"|[^;,]*)/g;
  for (const m of element.matchAll(re)) out.push([m[1] as string, (m[2] as string).replace(/^"|"$/g, '')]);
  return out;
}

describe('CheckRequests shaped as envoy/envoy.yaml makes Envoy send them', () => {
  it('builds one request per checked route with that route\'s context extensions, none for the health route', () => {
    const built = buildCheckRequests({ clientCertPem, proxyCertPem, authorization: 'Bearer x.y.z' });
    expect(built.map((b) => [b.route.name, b.request.attributes.context_extensions])).toEqual([
      ['orders-get', { policy: 'orders-read' }],
      ['orders-list', { policy: 'orders-read' }],
      ['orders-create', { policy: 'orders-write' }],
      ['not-found', {}],
    ]);
    const get = built[0]?.request as EnvoyCheckRequest;
    expect(get.attributes.request.http).toMatchObject({ method: 'POST', path: '/demo.orders.v1.Orders/GetOrder', scheme: 'https', protocol: 'HTTP/2' });
    expect(get.attributes.request.http.headers).toMatchObject({
      ':path': '/demo.orders.v1.Orders/GetOrder',
      ':method': 'POST',
      'content-type': 'application/grpc',
      authorization: 'Bearer x.y.z',
      'x-forwarded-proto': 'https',
    });
    expect(get.attributes.request.http.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(() => buildCheckRequest(readEnvoyShape(), 'health', { clientCertPem, proxyCertPem })).toThrow(/disables ext_authz/);
  });

  it('sends the client certificate URL-encoded exactly as Envoy does, and the SPIFFE principals of both ends', () => {
    const req = buildCheckRequest(readEnvoyShape(), 'orders-get', { clientCertPem, proxyCertPem });
    const { source, destination } = req.attributes;
    expect(source.principal).toBe('spiffe://entra-authz.demo/ns/demo/sa/demo-client');
    expect(destination.principal).toBe('spiffe://entra-authz.demo/ns/edge/sa/envoy');
    expect(destination.service).toBe('front-proxy');
    expect(destination.address.socket_address.port_value).toBe(8443);
    expect(source.certificate).toMatch(/^-----BEGIN%20CERTIFICATE-----%0A/);
    expect(source.certificate).not.toMatch(/[\n +/=]/);
    expect(new X509Certificate(decodeURIComponent(source.certificate)).fingerprint256).toBe(new X509Certificate(clientCertPem).fingerprint256);
    expect(envoyUrlEncodePem('a+b/c=d e\n')).toBe('a%2Bb%2Fc%3Dd%20e%0A');
  });

  it('replaces a client-sent x-forwarded-client-cert with Envoy\'s own element (SANITIZE_SET)', () => {
    const forged = 'By=spiffe://entra-authz.demo/ns/edge/sa/envoy;URI=spiffe://entra-authz.demo/ns/admin/sa/root';
    const req = buildCheckRequest(readEnvoyShape(), 'orders-create', {
      clientCertPem,
      proxyCertPem,
      headers: { 'X-Forwarded-Client-Cert': forged },
    });
    const xfcc = req.attributes.request.http.headers['x-forwarded-client-cert'] as string;
    expect(xfcc).not.toContain('ns/admin');
    const client = new X509Certificate(clientCertPem);
    const fields = parseXfcc(xfcc);
    expect(fields.map(([k]) => k)).toEqual(['By', 'Hash', 'Cert', 'Subject', 'URI', 'DNS']);
    expect(Object.fromEntries(fields)).toMatchObject({
      By: 'spiffe://entra-authz.demo/ns/edge/sa/envoy',
      Hash: createHash('sha256').update(client.raw).digest('hex'),
      Subject: 'CN=demo-client,O=entra-authz demo',
      URI: 'spiffe://entra-authz.demo/ns/demo/sa/demo-client',
      DNS: 'demo-client',
    });
    expect(new X509Certificate(decodeURIComponent(Object.fromEntries(fields)['Cert'] ?? '')).fingerprint256).toBe(client.fingerprint256);
  });

  it('appends to an incoming XFCC in APPEND_FORWARD mode and omits it entirely under SANITIZE', () => {
    const settings = { subject: false, cert: false, chain: false, uri: true, dns: false } as const;
    const own = xfccElement({ mode: 'APPEND_FORWARD', ...settings }, clientCertPem, proxyCertPem);
    const shape = { ...readEnvoyShape(), xfcc: { mode: 'APPEND_FORWARD' as const, ...settings } };
    const req = buildCheckRequest(shape, 'orders-get', { clientCertPem, proxyCertPem, headers: { 'x-forwarded-client-cert': 'By=a;URI=b' } });
    expect(req.attributes.request.http.headers['x-forwarded-client-cert']).toBe(`By=a;URI=b,${own}`);
    const sanitized = buildCheckRequest({ ...shape, xfcc: { ...shape.xfcc, mode: 'SANITIZE' } }, 'orders-get', {
      clientCertPem,
      proxyCertPem,
      headers: { 'x-forwarded-client-cert': 'By=a;URI=b' },
    });
    expect(sanitized.attributes.request.http.headers['x-forwarded-client-cert']).toBeUndefined();
  });

  it('produces objects that encode as envoy.service.auth.v3.CheckRequest without losing a field', () => {
    const check = loadAuthorizationService()['Check'];
    if (!check) throw new Error('Check method missing');
    for (const { request } of buildCheckRequests({ clientCertPem, proxyCertPem, authorization: 'Bearer t', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })) {
      const decoded = check.requestDeserialize(check.requestSerialize(request)) as EnvoyCheckRequest;
      const a = decoded.attributes;
      expect(a.context_extensions ?? {}).toEqual(request.attributes.context_extensions);
      expect(a.request.http.headers).toEqual(request.attributes.request.http.headers);
      expect(a.source).toMatchObject(request.attributes.source);
      expect(a.destination).toMatchObject(request.attributes.destination);
      expect(a.request.http).toMatchObject({ ...request.attributes.request.http, headers: expect.anything() });
      expect(String(a.request.time.seconds)).toBe(request.attributes.request.time.seconds);
    }
  });

  it('reads the sidecar variant the same way', () => {
    const shape = readEnvoyShape(SIDECAR_CONFIG);
    expect(shape.serviceCluster).toBe('orders');
    expect(shape.extAuthz.timeout).toBe('0.25s');
    const built = buildCheckRequests({ configPath: SIDECAR_CONFIG, clientCertPem, proxyCertPem: readFileSync(join(dir, 'orders.crt'), 'utf8') });
    expect(built.map((b) => b.request.attributes.context_extensions['policy'])).toEqual(['orders-read', 'orders-read', 'orders-write', undefined]);
    expect(built[0]?.request.attributes.destination.principal).toBe('spiffe://entra-authz.demo/ns/demo/sa/orders');
  });
});
