import { describe, expect, it } from 'vitest';
import { MAX_ORIGINAL_URI_BYTES, parseForwardAuthRequest, type ForwardAuthRequest } from '../../src/core/forward-auth.js';

const nginx = (headers: Record<string, string | string[]>, target = '/nginx'): ForwardAuthRequest => ({
  method: 'GET',
  target,
  protocol: 'HTTP/1.1',
  rawHeaders: Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, v])),
});

const nginxHeaders = { Host: 'authz', 'X-Original-Method': 'POST', 'X-Original-URI': '/orders/7?expand=lines', 'X-Original-Host': 'shop.example.com', 'X-Original-Proto': 'https' };

const forwardedHeaders = { Host: 'authz', 'X-Forwarded-Method': 'DELETE', 'X-Forwarded-Uri': '/orders/7', 'X-Forwarded-Host': 'Shop.Example.com:8443', 'X-Forwarded-Proto': 'https' };

function detailOf(req: ForwardAuthRequest): string {
  const parsed = parseForwardAuthRequest(req);
  if (parsed.ok) throw new Error('expected a refusal');
  return parsed.detail;
}

describe('parseForwardAuthRequest', () => {
  it('reads the original method, path, query, host and scheme from nginx auth_request headers', () => {
    const parsed = parseForwardAuthRequest(nginx(nginxHeaders));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.shape).toBe('nginx');
    expect(parsed.request).toMatchObject({ method: 'POST', path: '/orders/7', query: 'expand=lines', host: 'shop.example.com', scheme: 'https' });
  });

  it('reads Caddy and Traefik X-Forwarded-* headers on /forward-auth, host lower-cased', () => {
    const parsed = parseForwardAuthRequest(nginx(forwardedHeaders, '/forward-auth'));
    expect(parsed.ok && parsed.shape).toBe('forwarded');
    if (!parsed.ok) return;
    expect(parsed.request).toMatchObject({ method: 'DELETE', path: '/orders/7', query: '', host: 'shop.example.com:8443' });
  });

  it('takes the original path behind the /envoy prefix and the method and Host of the request for Envoy http_service', () => {
    const parsed = parseForwardAuthRequest({ method: 'PUT', target: '/envoy/orders/7?x=1', protocol: 'HTTP/1.1', rawHeaders: ['Host', 'shop.example.com', 'X-Request-Id', 'r-1'] });
    expect(parsed.ok && parsed.shape).toBe('envoy');
    if (!parsed.ok) return;
    expect(parsed.request).toMatchObject({ method: 'PUT', path: '/orders/7', query: 'x=1', host: 'shop.example.com', requestId: 'r-1' });
  });

  it('ignores X-Original-URI on the Envoy endpoint so a client cannot choose the path there', () => {
    const parsed = parseForwardAuthRequest({ method: 'GET', target: '/envoy/public', protocol: 'HTTP/1.1', rawHeaders: ['Host', 'shop', 'X-Original-URI', '/admin', 'X-Forwarded-Uri', '/admin'] });
    expect(parsed.ok && parsed.request.path).toBe('/public');
  });

  it('keeps repeated Authorization headers apart so the token reader can refuse them', () => {
    const parsed = parseForwardAuthRequest(nginx({ ...nginxHeaders, Authorization: ['Bearer a.b.c', 'Bearer d.e.f'] }));
    expect(parsed.ok && parsed.request.headers.get('authorization')).toEqual(['Bearer a.b.c', 'Bearer d.e.f']);
  });

  it('refuses an unknown endpoint, naming it', () => {
    const parsed = parseForwardAuthRequest(nginx(nginxHeaders, '/auth'));
    expect(parsed).toEqual({ ok: false, shape: undefined, detail: 'no authorization endpoint at "/auth"' });
    expect(detailOf(nginx(nginxHeaders, '/envoy'))).toBe('no authorization endpoint at "/envoy"');
  });

  it.each([
    ['a missing original URI', { 'X-Original-URI': undefined }, 'no x-original-uri header'],
    ['an empty original URI', { 'X-Original-URI': '' }, 'empty x-original-uri header'],
    ['a missing original method', { 'X-Original-Method': undefined }, 'no x-original-method header'],
    ['a missing original host', { 'X-Original-Host': undefined }, 'no x-original-host header'],
    ['an absolute URL', { 'X-Original-URI': 'https://evil.example/admin' }, 'the original URI is absolute, not a path'],
    ['a relative URL', { 'X-Original-URI': 'admin/users' }, 'the original URI is relative, not a path'],
    ['a URI with spaces', { 'X-Original-URI': '/orders /admin' }, 'the original URI has characters outside a path and query'],
    ['a URI with a fragment', { 'X-Original-URI': '/orders#x' }, 'the original URI has characters outside a path and query'],
    ['an oversized URI', { 'X-Original-URI': `/${'a'.repeat(MAX_ORIGINAL_URI_BYTES)}` }, `the original URI exceeds ${MAX_ORIGINAL_URI_BYTES} bytes`],
    ['an absurd method', { 'X-Original-Method': 'GET /admin' }, 'the original method "GET /admin" is not an HTTP method'],
    ['an absurd host', { 'X-Original-Host': 'shop.example.com/admin' }, 'the original host "shop.example.com/admin" is not a host name'],
    ['a scheme other than http(s)', { 'X-Original-Proto': 'gopher' }, 'the original scheme "gopher" is not http or https'],
    ['two original URIs', { 'X-Original-URI': ['/public', '/admin'] }, '2 x-original-uri headers'],
  ])('refuses %s', (_name, change, detail) => {
    const headers: Record<string, string | string[]> = { ...nginxHeaders };
    for (const [k, v] of Object.entries(change)) {
      if (v === undefined) delete headers[k];
      else headers[k] = v;
    }
    expect(detailOf(nginx(headers))).toBe(detail);
  });

  it('refuses a header larger than the limit and more headers than the limit', () => {
    const limits = { maxHeaderBytes: 1024, maxHeaders: 8 };
    const big = parseForwardAuthRequest(nginx({ ...nginxHeaders, Authorization: `Bearer ${'a'.repeat(2000)}` }), limits);
    expect(big.ok || big.detail).toBe('header "authorization" exceeds 1024 bytes');
    const many = parseForwardAuthRequest(nginx({ ...nginxHeaders, a: '1', b: '2', c: '3', d: '4' }), limits);
    expect(many.ok || many.detail).toBe('more than 8 headers');
  });
});
