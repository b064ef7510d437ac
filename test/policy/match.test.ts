import { describe, expect, it } from 'vitest';
import { normalizeCheckRequest } from '../../src/core/request.js';
import { compilePolicy } from '../../src/policy/compile.js';
import { selectRule, traceRules } from '../../src/policy/evaluate.js';
import { grpcServicePrefix, hostForMatching, prefixMatches } from '../../src/policy/patterns.js';
import { configWithRules, requestView } from './fixtures.js';

/** The name of the rule a request selects, or the selection kind. */
function pick(rulesYaml: string) {
  const policy = compilePolicy(configWithRules(rulesYaml));
  return (opts: Parameters<typeof requestView>[0]) => {
    const s = selectRule(policy, requestView(opts));
    return s.kind === 'rule' ? s.rule.name : s.kind;
  };
}

describe('match: context extensions', () => {
  const select = pick(`
  - name: orders
    match: { contextExtensions: { route: orders, tier: gold } }
`);
  it.each([
    [{ route: 'orders', tier: 'gold' }, 'orders'],
    [{ route: 'orders', tier: 'gold', extra: 'x' }, 'orders'],
    [{ route: 'orders' }, 'none'],
    [{ route: 'Orders', tier: 'gold' }, 'none'],
    [{}, 'none'],
  ])('%j → %s', (contextExtensions, expected) => {
    expect(select({ contextExtensions })).toBe(expected);
  });

  it('does not see inherited properties as extensions', () => {
    const s = pick(`
  - name: proto
    match: { contextExtensions: { constructor: x } }
`);
    expect(s({ contextExtensions: {} })).toBe('none');
  });
});

describe('match: hosts', () => {
  const select = pick(`
  - name: rules
    match: { hosts: [api.example.com, "*.Example.org", "10.0.0.1", "[::1]"] }
`);
  it.each([
    ['api.example.com', 'rules'],
    ['API.Example.COM', 'rules'],
    ['api.example.com:8443', 'rules'],
    ['api.example.com.', 'rules'],
    ['www.api.example.com', 'none'],
    ['example.com', 'none'],
    ['a.example.org', 'rules'],
    ['a.b.example.org', 'rules'],
    ['example.org', 'none'],
    ['evilexample.org', 'none'],
    ['10.0.0.1:80', 'rules'],
    ['[::1]:8443', 'rules'],
    ['', 'none'],
  ])('%s → %s', (host, expected) => {
    expect(select({ host })).toBe(expected);
  });
});

describe('match: paths', () => {
  const select = pick(`
  - name: exact
    match: { paths: [{ exact: /healthz }] }
  - name: prefix
    match: { paths: [{ prefix: /api/v1/ }] }
  - name: grpc-method
    match: { paths: [{ grpc: shop.v1.Orders/Get }] }
  - name: grpc-service
    match: { paths: [{ grpc: /shop.v1.Catalog }] }
  - name: root
    match: { paths: [{ prefix: / }] }
`);
  it.each([
    ['/healthz', 'exact'],
    ['/healthz?verbose=1', 'exact'],
    ['/healthz/', 'root'],
    ['/HEALTHZ', 'root'],
    ['/api/v1', 'prefix'],
    ['/api/v1/orders/7', 'prefix'],
    ['/api/v10', 'root'],
    ['/shop.v1.Orders/Get', 'grpc-method'],
    ['/shop.v1.Orders/List', 'root'],
    ['/shop.v1.Catalog/List', 'grpc-service'],
    ['/shop.v1.Catalog/Get', 'grpc-service'],
    ['/shop.v1.Catalog/', 'root'],
    ['/shop.v1.Catalog/Get/extra', 'root'],
    ['/shop.v1.CatalogAdmin/Get', 'root'],
  ])('%s → %s', (path, expected) => {
    expect(select({ path })).toBe(expected);
  });

  it.each(['/a/../healthz', '/a/./b', '/a//b', '/a/%2e%2e/b', '/a%2Fb', '/a\\b', '/..', '/x/.', '/api;x=1/v1', '/api/v1%00', '/api/%zz'])(
    'refuses the non-canonical path %s before any rule',
    (path) => {
      expect(select({ path })).toBe('path_not_canonical');
    },
  );

  it('matches a percent-encoded method name as the decoded name an upstream serves', () => {
    const s = pick(`
  - name: delete
    match: { paths: [{ grpc: shop.v1.Orders/Delete }] }
  - name: orders
    match: { paths: [{ grpc: shop.v1.Orders }] }
`);
    expect(s({ path: '/shop.v1.Orders/%44elete' })).toBe('delete');
    expect(s({ path: '/shop.v1.Orders/Del%65te?x=1' })).toBe('delete');
    expect(s({ path: '/%73hop.v1.Orders/List' })).toBe('orders');
  });

  it('does not refuse non-canonical paths when no rule matches on paths', () => {
    const s = pick(`
  - name: any
`);
    expect(s({ path: '/a/../b' })).toBe('any');
  });
});

describe('match: methods', () => {
  const select = pick(`
  - name: read
    match: { methods: [get, HEAD] }
`);
  it.each([
    ['GET', 'read'],
    ['get', 'read'],
    ['HEAD', 'read'],
    ['POST', 'none'],
  ])('%s → %s', (method, expected) => {
    expect(select({ method })).toBe(expected);
  });
});

describe('match: combined kinds', () => {
  const select = pick(`
  - name: write-orders
    match:
      contextExtensions: { route: orders }
      hosts: [api.example.com]
      paths: [{ prefix: /orders }]
      methods: [POST]
`);
  it('needs every given kind to fit', () => {
    const ok = { contextExtensions: { route: 'orders' }, host: 'api.example.com', path: '/orders/1', method: 'POST' };
    expect(select(ok)).toBe('write-orders');
    expect(select({ ...ok, contextExtensions: {} })).toBe('none');
    expect(select({ ...ok, host: 'other.example.com' })).toBe('none');
    expect(select({ ...ok, path: '/invoices' })).toBe('none');
    expect(select({ ...ok, method: 'GET' })).toBe('none');
  });
});

describe('precedence', () => {
  it('the first matching rule in file order decides, even if a later one is more specific', () => {
    const select = pick(`
  - name: broad
    match: { paths: [{ prefix: /api }], methods: [DELETE] }
  - name: narrow
    match: { paths: [{ exact: /api/admin }] }
`);
    expect(select({ path: '/api/admin', method: 'DELETE' })).toBe('broad');
    expect(select({ path: '/api/admin', method: 'GET' })).toBe('narrow');
  });

  it('an empty match is a catch-all; without one, nothing matching is a default deny', () => {
    expect(pick(`
  - name: a
    match: { methods: [GET] }
  - name: fallback
`)({ method: 'PUT' })).toBe('fallback');
    expect(pick(`
  - name: a
    match: { methods: [GET] }
`)({ method: 'PUT' })).toBe('none');
  });
});

describe('traceRules (explain)', () => {
  it('says why each earlier rule did not match, and stops at the match', () => {
    const policy = compilePolicy(
      configWithRules(`
  - name: health
    match: { paths: [{ exact: /healthz }] }
  - name: admin
    match: { hosts: [admin.example.com] }
  - name: get-only
    match: { methods: [GET] }
  - name: orders
    match: { contextExtensions: { route: orders } }
  - name: later
`),
    );
    const { selection, trace } = traceRules(policy, requestView({ path: '/orders', method: 'POST', contextExtensions: { route: 'orders' } }));
    expect(selection.kind === 'rule' && selection.rule.name).toBe('orders');
    expect(trace.map((t) => [t.rule, t.matched])).toEqual([
      ['health', false],
      ['admin', false],
      ['get-only', false],
      ['orders', true],
    ]);
    expect(trace[0]?.mismatch).toBe('path "/orders" matches none of [exact /healthz]');
    expect(trace[1]?.mismatch).toBe('host "api.example.com" is not one of [admin.example.com]');
    expect(trace[2]?.mismatch).toBe('method POST is not one of [GET]');
  });
});

describe('rule evaluation never throws', () => {
  const policy = compilePolicy(
    configWithRules(`
  - name: a
    match:
      contextExtensions: { route: x }
      hosts: ["*.example.com"]
      paths: [{ prefix: /a }, { grpc: a.B }]
      methods: [GET]
  - name: b
    match: { paths: [{ exact: / }] }
`),
  );
  const weird: unknown[] = [
    '\u0000',
    '%',
    '%%2f',
    '/'.repeat(1000),
    'x'.repeat(100_000),
    '/\ud800',
    '/a?b#c',
    '::::',
    '[',
    '[::1',
    '__proto__',
    'constructor',
  ];
  it.each(weird)('handles host/path/method/extension %j', (value) => {
    const v = String(value);
    const raw = {
      attributes: {
        context_extensions: { route: v, [v]: v, __proto__: { route: 'x' } },
        request: { http: { method: v, path: v.startsWith('/') ? v : `/${v}`, host: v, headers: { [v.toLowerCase() || 'x']: v } } },
      },
    };
    const normalized = normalizeCheckRequest(raw);
    if (!normalized.ok) return;
    expect(() => selectRule(policy, normalized.request)).not.toThrow();
    expect(() => traceRules(policy, normalized.request)).not.toThrow();
  });
});

describe('patterns', () => {
  it('hostForMatching strips ports and trailing dots', () => {
    expect(hostForMatching('a.b:80')).toBe('a.b');
    expect(hostForMatching('a.b.')).toBe('a.b');
    expect(hostForMatching('[::1]:443')).toBe('[::1]');
    expect(hostForMatching('')).toBe('');
  });

  it('grpcServicePrefix recognises two-segment paths only', () => {
    expect(grpcServicePrefix('/a.B/C')).toBe('/a.B/');
    expect(grpcServicePrefix('/a.B/')).toBe('');
    expect(grpcServicePrefix('/a.B')).toBe('');
    expect(grpcServicePrefix('/a/b/c')).toBe('');
    expect(grpcServicePrefix('//c')).toBe('');
  });

  it('prefixes match whole segments', () => {
    expect(prefixMatches('/api', '/api')).toBe(true);
    expect(prefixMatches('/api', '/api/x')).toBe(true);
    expect(prefixMatches('/api', '/apix')).toBe(false);
    expect(prefixMatches('', '/anything')).toBe(true);
  });
});
