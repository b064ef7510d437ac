import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { extractToken } from '../../src/authn/bearer.js';
import { parseCertificateDer } from '../../src/authn/mtls/certificate.js';
import { readCertificateFields } from '../../src/authn/mtls/der.js';
import { compileSpiffePattern, parseSpiffeId } from '../../src/authn/mtls/spiffe.js';
import { parseXfcc } from '../../src/authn/mtls/xfcc.js';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { normalizePath } from '../../src/core/path.js';
import { REASONS } from '../../src/core/reasons.js';
import { normalizeCheckRequest, type RequestView } from '../../src/core/request.js';
import { getPki } from '../authn/mtls/helpers.js';
import { FUZZ } from './settings.js';

const UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~';
const PATHISH = [...UNRESERVED, '/', '.', '%', ';', '\\', '?', '#', ':', '@', '!', '$', '&', "'", '(', ')', '*', '+', ',', '=', ' ', '\u0000', '\u00e9'];
const pathish = fc.array(fc.constantFrom(...PATHISH, '%2e', '%2F', '%5c', '%00', '%41', '%7e', '%3b', '%zz', '..', '//'), { maxLength: 40 }).map((parts) => parts.join(''));

describe('path normalization never fails open', () => {
  it('never throws and returns a path that normalizes to itself', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), pathish.map((p) => `/${p}`)), (raw) => {
        const first = normalizePath(raw);
        if (!first.ok) return;
        expect(normalizePath(first.path)).toEqual(first);
      }),
      FUZZ,
    );
  });

  it('never lets a dot segment, an empty segment, a ";", a backslash or an encoded separator through', () => {
    fc.assert(
      fc.property(pathish.map((p) => `/${p}`), (raw) => {
        const result = normalizePath(raw);
        if (!result.ok) return;
        const segments = result.path.split('/').slice(1);
        expect(segments.slice(0, -1)).not.toContain('');
        expect(segments).not.toContain('.');
        expect(segments).not.toContain('..');
        // eslint-disable-next-line no-control-regex
        expect(result.path).not.toMatch(/[;\\\u0000-\u001f\u007f]|%(2e|2f|5c|0[0-9a-f]|1[0-9a-f]|7f)/i);
      }),
      FUZZ,
    );
  });

  it('reads any percent-encoding of unreserved characters as the plain path', () => {
    const segment = fc.array(fc.constantFrom(...UNRESERVED), { minLength: 1, maxLength: 12 }).map((c) => c.join(''));
    const encodeSome = (path: string, mask: readonly boolean[], upper: boolean): string =>
      [...path]
        .map((c, i) => {
          if (c === '/' || !mask[i % mask.length]) return c;
          const hex = c.charCodeAt(0).toString(16);
          return `%${upper ? hex.toUpperCase() : hex}`;
        })
        .join('');
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.array(fc.boolean(), { minLength: 1 }), fc.boolean(), (segments, mask, upper) => {
        const plain = `/${segments.join('/')}`;
        expect(normalizePath(encodeSome(plain, mask, upper))).toEqual({ ok: true, path: plain });
      }),
      FUZZ,
    );
  });
});

describe('request normalization never throws', () => {
  it('returns a view or a detail for any value at all', () => {
    fc.assert(
      fc.property(fc.anything({ withNullPrototype: true, withBigInt: true, withTypedArray: true, withMap: true }), (raw) => {
        const result = normalizeCheckRequest(raw);
        expect(typeof result.ok).toBe('boolean');
      }),
      FUZZ,
    );
  });

  it('gives every Envoy-shaped request lower-case header names and a normalized or flagged path', () => {
    const headers = fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ maxLength: 60 }), { maxKeys: 8 });
    fc.assert(
      fc.property(fc.string({ maxLength: 10 }), fc.oneof(fc.string(), pathish.map((p) => `/${p}`)), headers, (method, path, extra) => {
        const result = normalizeCheckRequest(envoyCheckRequest({ method, path, headers: extra }));
        if (!result.ok) return;
        const view = result.request;
        for (const name of view.headers.keys()) expect(name).toBe(name.toLowerCase());
        if (view.pathProblem === '') expect(normalizePath(view.path)).toEqual({ ok: true, path: view.path });
        expect(view.path.includes('?')).toBe(false);
      }),
      FUZZ,
    );
  });
});

describe('bearer parsing never guesses', () => {
  const viewWith = (authorization: string): RequestView => {
    const r = normalizeCheckRequest(envoyCheckRequest({ headers: { authorization } }));
    if (!r.ok) throw new Error(r.detail);
    return r.request;
  };
  const authAlphabet = [...UNRESERVED, ' ', '.', ',', '=', '+', '/', '"', '\t', 'Bearer ', 'bearer ', 'MTLS_POP ', 'Basic ', 'eyJ'];

  it('yields a token only for one Bearer or MTLS_POP credential, without commas or spaces', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.constantFrom(...authAlphabet), { maxLength: 30 }).map((p) => p.join(''))), (value) => {
        const result = extractToken(viewWith(value), 'authorization');
        if (result.kind === 'invalid') expect(REASONS[result.reason].httpStatus).toBeGreaterThanOrEqual(400);
        if (result.kind !== 'token') return;
        expect(['bearer', 'mtls_pop']).toContain(result.scheme);
        expect(result.token).toMatch(/^[A-Za-z0-9._~+/-]+=*$/);
        const [scheme, credential, ...rest] = value.trim().split(/ +/);
        expect([scheme?.toLowerCase(), credential, rest]).toEqual([result.scheme, result.token, []]);
      }),
      FUZZ,
    );
  });

  it('reads back any compact JWS sent as Bearer', () => {
    const seg = fc.array(fc.constantFrom(...UNRESERVED.replace('~', '')), { minLength: 1, maxLength: 40 }).map((c) => c.join(''));
    fc.assert(
      fc.property(seg, seg, seg, (a, b, c) => {
        const token = `${a}.${b}.${c}`;
        expect(extractToken(viewWith(`Bearer ${token}`), 'authorization')).toEqual({ kind: 'token', token, scheme: 'bearer' });
      }),
      FUZZ,
    );
  });
});

describe('XFCC parsing', () => {
  const XFCC_CHARS = [...'abcXYZ019:/.-_ ', ',', ';', '=', '"', '\\', 'By=', 'URI=', 'DNS=', 'Hash=', 'Cert=', 'Subject="'];

  it('never throws and never returns more elements than its limit', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.constantFrom(...XFCC_CHARS), { maxLength: 60 }).map((p) => p.join(''))), (value) => {
        const result = parseXfcc(value, { maxBytes: 4096, maxElements: 4, maxPairs: 8 });
        if (result.ok) expect(result.elements.length).toBeLessThanOrEqual(4);
        else expect(result.reason).toBe('xfcc_malformed');
      }),
      FUZZ,
    );
  });

  it('reads back the By, URI and DNS values of well-formed elements', () => {
    const value = fc.array(fc.constantFrom(...'abcz09:/._-'), { minLength: 1, maxLength: 30 }).map((c) => c.join(''));
    const element = fc.record({ by: value, uri: value, dns: value });
    fc.assert(
      fc.property(fc.array(element, { minLength: 1, maxLength: 4 }), (elements) => {
        const header = elements.map((e) => `By=${e.by};URI=${e.uri};DNS=${e.dns}`).join(',');
        const result = parseXfcc(header);
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(result.elements.map((e) => ({ by: e.by, uri: e.uris[0], dns: e.dns[0] }))).toEqual(elements);
      }),
      FUZZ,
    );
  });
});

describe('SPIFFE ids', () => {
  const SPIFFE_CHARS = [...'abz09.-_/*:@%A ', 'spiffe://', '..', '//'];
  const spiffeish = fc.array(fc.constantFrom(...SPIFFE_CHARS), { maxLength: 30 }).map((p) => `spiffe://${p.join('')}`);

  it('parse to exactly the string they came from, or not at all', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), spiffeish), (value) => {
        const id = parseSpiffeId(value);
        if (id === undefined) return;
        expect(`spiffe://${[id.trustDomain, ...id.segments].join('/')}`).toBe(value);
        for (const s of id.segments) expect(['', '.', '..']).not.toContain(s);
      }),
      FUZZ,
    );
  });

  it('patterns compile or report a problem, never throw', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), spiffeish), (pattern) => {
        const compiled = compileSpiffePattern(pattern);
        if (!compiled.ok) expect(typeof compiled.problem).toBe('string');
      }),
      FUZZ,
    );
  });
});

describe('DER certificates', () => {
  let der: Uint8Array;
  beforeAll(async () => {
    const pki = await getPki();
    der = new Uint8Array(pki.checkout.der);
  });
  const limits = { maxSans: 16, maxSanLength: 512 };

  it('random bytes give fields or a problem, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const fields = readCertificateFields(bytes, limits);
        expect(['string', 'object']).toContain(typeof fields);
      }),
      FUZZ,
    );
  });

  it('a corrupted or truncated certificate is parsed or refused with a reason code', () => {
    const edit = fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('set', 'cut', 'drop') });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        let bytes = Uint8Array.from(der);
        for (const e of edits) {
          const at = e.at % bytes.length;
          if (e.kind === 'set') bytes[at] = e.byte;
          else if (e.kind === 'cut') bytes = bytes.subarray(0, at);
          else bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
          if (bytes.length === 0) return;
        }
        expect(typeof readCertificateFields(bytes, limits)).toMatch(/string|object/);
        const parsed = parseCertificateDer(bytes);
        if (!parsed.ok) expect(Object.keys(REASONS)).toContain(parsed.reason);
      }),
      { ...FUZZ, numRuns: 300 },
    );
  });
});
