import { describe, expect, it } from 'vitest';
import { normalizeCheckRequest } from '../../src/core/request.js';
import { envoyCheckRequest } from '../../src/cli/check.js';

describe('normalizeCheckRequest', () => {
  it('reads method, host, path and query from an Envoy-shaped request', () => {
    const r = normalizeCheckRequest(envoyCheckRequest({ method: 'post', path: '/orders/1?debug=1#frag', host: 'API.example.com' }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.request.method).toBe('POST');
    expect(r.request.host).toBe('api.example.com');
    expect(r.request.path).toBe('/orders/1');
    expect(r.request.query).toBe('debug=1');
  });

  it('lower-cases header names and keeps header_map repeats apart', () => {
    const raw = envoyCheckRequest();
    const http = (raw['attributes'] as { request: { http: Record<string, unknown> } }).request.http;
    delete http.headers;
    http.header_map = {
      headers: [
        { key: 'Authorization', value: 'Bearer a' },
        { key: 'authorization', raw_value: Buffer.from('Bearer b') },
        { key: ':path', value: '/' },
      ],
    };
    const r = normalizeCheckRequest(raw);
    expect(r.ok && r.request.headers.get('authorization')).toEqual(['Bearer a', 'Bearer b']);
  });

  it.each([
    ['nothing', undefined],
    ['a string', 'junk'],
    ['no attributes', {}],
    ['no http section', { attributes: { request: {} } }],
    ['no path or method', { attributes: { request: { http: { headers: {} } } } }],
    ['headers that are not strings', { attributes: { request: { http: { method: 'GET', path: '/', headers: { a: 1 } } } } }],
  ])('refuses a request with %s', (_name, raw) => {
    const r = normalizeCheckRequest(raw);
    expect(r.ok).toBe(false);
  });

  it('refuses a header value larger than the limit', () => {
    const raw = envoyCheckRequest({ headers: { 'x-big': 'a'.repeat(2048) } });
    const r = normalizeCheckRequest(raw, { maxHeaderBytes: 1024, maxHeaders: 100 });
    expect(r).toMatchObject({ ok: false, detail: expect.stringContaining('x-big') });
  });

  it('refuses more headers than the limit', () => {
    const headers = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-h${i}`, 'v']));
    const r = normalizeCheckRequest(envoyCheckRequest({ headers }), { maxHeaderBytes: 1024, maxHeaders: 10 });
    expect(r.ok).toBe(false);
  });

  it('survives an object whose getters throw', () => {
    const hostile = { get attributes(): never { throw new Error('boom'); } };
    expect(normalizeCheckRequest(hostile)).toMatchObject({ ok: false });
  });

  it('ignores non-string context extensions and keeps string ones', () => {
    const raw = envoyCheckRequest({ contextExtensions: { policy: 'orders' } });
    (raw['attributes'] as { context_extensions: Record<string, unknown> }).context_extensions['bad'] = { nested: true };
    const r = normalizeCheckRequest(raw);
    expect(r.ok && { ...r.request.contextExtensions }).toEqual({ policy: 'orders' });
  });
});
