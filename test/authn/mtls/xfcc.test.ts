import { describe, expect, it } from 'vitest';
import { parseXfcc, selectTrustedElement, xfccHeaderValue } from '../../../src/authn/mtls/xfcc.js';

const HASH = '468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688';

describe('XFCC parsing', () => {
  it("parses Envoy's documented example with a quoted Subject", () => {
    const r = parseXfcc(
      `By=http://frontend.lyft.com;Hash=${HASH};Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`,
    );
    expect(r).toEqual({
      ok: true,
      elements: [
        {
          by: 'http://frontend.lyft.com',
          hash: HASH,
          cert: undefined,
          chain: undefined,
          subject: '/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client',
          uris: ['http://testclient.lyft.com'],
          dns: [],
        },
      ],
    });
  });

  it('keeps commas, semicolons and equals signs inside quoted values, and escaped quotes', () => {
    const r = parseXfcc('By=spiffe://a/b;Subject="CN=a\\"b,O=x;y=z";URI=spiffe://c/d,By=spiffe://e/f;DNS=x.example.com;DNS=y.example.com');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.elements).toHaveLength(2);
    expect(r.elements[0]?.subject).toBe('CN=a\\"b,O=x;y=z');
    expect(r.elements[1]?.dns).toEqual(['x.example.com', 'y.example.com']);
  });

  it('accepts an empty quoted Subject as Istio sends it, and ignores unknown keys', () => {
    const r = parseXfcc(`By=spiffe://cluster.local/ns/a/sa/b;Hash=${HASH};Subject="";URI=spiffe://cluster.local/ns/c/sa/d;Future=1`);
    expect(r.ok && r.elements[0]?.subject).toBe('');
  });

  it('tolerates spaces around separators (several proxies joining values)', () => {
    const r = parseXfcc('By=spiffe://a/b;URI=spiffe://c/d , By=spiffe://e/f; URI=spiffe://g/h');
    expect(r.ok && r.elements.map((e) => e.by)).toEqual(['spiffe://a/b', 'spiffe://e/f']);
  });

  it.each([
    ['an empty value list', ''],
    ['a bare word', 'garbage'],
    ['a key without a value separator', 'By'],
    ['an empty element', 'By=spiffe://a/b,,By=spiffe://c/d'],
    ['a trailing comma', 'By=spiffe://a/b,'],
    ['an unterminated quote', 'By=spiffe://a/b;Subject="CN=x'],
    ['text after a quoted value', 'Subject="CN=x"junk;By=spiffe://a/b'],
    ['a stray quote in an unquoted value', 'By=spiffe://a/"b"'],
    ['a repeated By', 'By=spiffe://a/b;By=spiffe://c/d'],
    ['a repeated Hash', `Hash=${HASH};Hash=${HASH}`],
    ['control characters', 'By=spiffe://a/b\r\nX: y'],
    ['a non-letter key', 'B-y=spiffe://a/b'],
  ])('refuses %s', (_name, value) => {
    expect(parseXfcc(value)).toMatchObject({ ok: false, reason: 'xfcc_malformed' });
  });

  it('caps the header size, the element count and the pairs per element', () => {
    expect(parseXfcc('URI=' + 'a'.repeat(70 * 1024))).toMatchObject({ ok: false, reason: 'xfcc_malformed' });
    expect(parseXfcc(Array.from({ length: 17 }, () => 'URI=spiffe://a/b').join(','))).toMatchObject({ ok: false, reason: 'xfcc_malformed' });
    expect(parseXfcc(Array.from({ length: 65 }, () => 'DNS=a.example.com').join(';'))).toMatchObject({ ok: false, reason: 'xfcc_malformed' });
  });
});

describe('XFCC trust', () => {
  const trust = { trusted: true, proxies: new Set(['spiffe://cluster.local/ns/edge/sa/front-proxy']) };
  const parse = (v: string) => {
    const r = parseXfcc(v);
    if (!r.ok) throw new Error(r.detail);
    return r.elements;
  };

  it('uses the last element when a configured proxy added it', () => {
    const r = selectTrustedElement(
      parse('By=spiffe://evil/x;URI=spiffe://cluster.local/ns/admin/sa/root,By=spiffe://cluster.local/ns/edge/sa/front-proxy;URI=spiffe://cluster.local/ns/shop/sa/checkout'),
      trust,
    );
    expect(r.ok && r.element.uris).toEqual(['spiffe://cluster.local/ns/shop/sa/checkout']);
  });

  it('refuses when the nearest element was added by an unknown proxy, even if an earlier one names a trusted proxy', () => {
    const r = selectTrustedElement(
      parse('By=spiffe://cluster.local/ns/edge/sa/front-proxy;URI=spiffe://cluster.local/ns/admin/sa/root,By=spiffe://other/proxy;URI=spiffe://x/y'),
      trust,
    );
    expect(r).toMatchObject({ ok: false, reason: 'xfcc_untrusted' });
  });

  it('refuses an element without By', () => {
    expect(selectTrustedElement(parse('URI=spiffe://cluster.local/ns/shop/sa/checkout'), trust)).toMatchObject({
      ok: false,
      reason: 'xfcc_untrusted',
    });
  });

  it('compares By exactly (no prefix or case folding)', () => {
    for (const by of ['spiffe://cluster.local/ns/edge/sa/front-proxy-2', 'SPIFFE://cluster.local/ns/edge/sa/front-proxy', 'spiffe://cluster.local/ns/edge/sa']) {
      expect(selectTrustedElement(parse(`By=${by};URI=spiffe://a/b`), trust)).toMatchObject({ ok: false, reason: 'xfcc_untrusted' });
    }
  });

  it('joins repeated header values with commas, as Envoy does', () => {
    const headers = new Map([['x-forwarded-client-cert', ['By=spiffe://a/b;URI=spiffe://c/d', 'By=spiffe://e/f;URI=spiffe://g/h']]]);
    expect(xfccHeaderValue(headers)).toBe('By=spiffe://a/b;URI=spiffe://c/d,By=spiffe://e/f;URI=spiffe://g/h');
    expect(xfccHeaderValue(new Map())).toBeUndefined();
    expect(xfccHeaderValue(new Map([['x-forwarded-client-cert', ['  ']]]))).toBeUndefined();
  });
});
