/**
 * `x-forwarded-client-cert` (XFCC): Envoy's record of the client certificates seen by each proxy.
 *
 * Format: elements separated by `,`, key/value pairs by `;`, values containing `,;="` quoted with
 * `"` (a `\` inside quotes escapes the next character). Keys: `By`, `Hash`, `Cert`, `Chain`,
 * `Subject`, and repeatable `URI` / `DNS`. Envoy appends its element at the end
 * (APPEND_FORWARD) or replaces the header (SANITIZE_SET), so the last element is the one written
 * by the nearest proxy; anything earlier came from further away, possibly from the client itself.
 */
import { fail, type MtlsFailure } from './types.js';

export const XFCC_HEADER = 'x-forwarded-client-cert';

export interface XfccElement {
  /** URI SAN of the proxy that added the element. */
  readonly by: string | undefined;
  /** Hex SHA-256 of the client certificate's DER. */
  readonly hash: string | undefined;
  /** URL-encoded PEM of the client certificate, as sent. */
  readonly cert: string | undefined;
  readonly chain: string | undefined;
  readonly subject: string | undefined;
  readonly uris: readonly string[];
  readonly dns: readonly string[];
}

export interface XfccLimits {
  /** Largest header value considered (all values joined); larger is malformed. */
  readonly maxBytes: number;
  readonly maxElements: number;
  /** Most key/value pairs in one element. */
  readonly maxPairs: number;
}

export const DEFAULT_XFCC_LIMITS: XfccLimits = Object.freeze({ maxBytes: 64 * 1024, maxElements: 16, maxPairs: 64 });

export type XfccParseResult = { readonly ok: true; readonly elements: readonly XfccElement[] } | MtlsFailure;

interface MutableElement {
  by?: string;
  hash?: string;
  cert?: string;
  chain?: string;
  subject?: string;
  uris: string[];
  dns: string[];
  pairs: number;
}

const SINGLE_KEYS = { by: 'by', hash: 'hash', cert: 'cert', chain: 'chain', subject: 'subject' } as const;

const malformed = (detail: string): MtlsFailure => fail('xfcc_malformed', detail);

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t';

/** Parses an XFCC header value. Never throws; any deviation from the grammar is `xfcc_malformed`. */
export function parseXfcc(value: string, limits: XfccLimits = DEFAULT_XFCC_LIMITS): XfccParseResult {
  if (value.length > limits.maxBytes) return malformed(`the header exceeds ${limits.maxBytes} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) return malformed('the header contains control characters');

  const elements: XfccElement[] = [];
  let current: MutableElement = { uris: [], dns: [], pairs: 0 };
  const len = value.length;
  let pos = 0;

  const finish = (): string | undefined => {
    if (current.pairs === 0) return 'an empty element';
    if (elements.length >= limits.maxElements) return `more than ${limits.maxElements} elements`;
    const { by, hash, cert, chain, subject, uris, dns } = current;
    elements.push({ by, hash, cert, chain, subject, uris, dns });
    current = { uris: [], dns: [], pairs: 0 };
    return undefined;
  };

  while (true) {
    while (isSpace(value[pos])) pos++;
    // Key.
    const keyStart = pos;
    while (pos < len && /[A-Za-z]/.test(value[pos] as string)) pos++;
    const key = value.slice(keyStart, pos).toLowerCase();
    if (key === '' || value[pos] !== '=') return malformed(`expected Key= at offset ${keyStart}`);
    pos++;
    // Value.
    let v: string;
    if (value[pos] === '"') {
      const start = pos + 1;
      let i = start;
      while (i < len && value[i] !== '"') i += value[i] === '\\' ? 2 : 1;
      if (i >= len) return malformed('an unterminated quoted value');
      v = value.slice(start, i);
      pos = i + 1;
    } else {
      const start = pos;
      while (pos < len && value[pos] !== ';' && value[pos] !== ',') pos++;
      v = value.slice(start, pos).trimEnd();
      if (v.includes('"')) return malformed(`an unquoted ${key} value contains '"'`);
    }
    if (++current.pairs > limits.maxPairs) return malformed(`more than ${limits.maxPairs} pairs in an element`);
    if (key === 'uri') current.uris.push(v);
    else if (key === 'dns') current.dns.push(v);
    else if (key in SINGLE_KEYS) {
      const k = SINGLE_KEYS[key as keyof typeof SINGLE_KEYS];
      if (current[k] !== undefined) return malformed(`a repeated ${key} key in one element`);
      current[k] = v;
    }
    // Unknown keys are skipped: newer Envoys may add fields.

    while (isSpace(value[pos])) pos++;
    if (pos >= len) {
      const problem = finish();
      return problem ? malformed(problem) : { ok: true, elements };
    }
    const sep = value[pos];
    pos++;
    if (sep === ',') {
      const problem = finish();
      if (problem) return malformed(problem);
    } else if (sep !== ';') {
      return malformed(`unexpected "${sep}" after a value`);
    }
  }
}

export interface XfccTrust {
  /** Whether XFCC is used at all; when false the header is ignored. */
  readonly trusted: boolean;
  /** `By` URIs of the proxies whose elements are trusted (exact match). */
  readonly proxies: ReadonlySet<string>;
}

/**
 * Picks the element to trust: the last one (written by the nearest proxy), and only when its `By`
 * is a configured proxy. Earlier elements are never used: the nearest trusted proxy vouches for
 * its own element only.
 */
export function selectTrustedElement(elements: readonly XfccElement[], trust: XfccTrust): { ok: true; element: XfccElement } | MtlsFailure {
  const element = elements[elements.length - 1];
  if (element === undefined) return malformed('no elements');
  if (element.by === undefined || element.by === '') return fail('xfcc_untrusted', 'the nearest element has no By');
  if (!trust.proxies.has(element.by)) {
    return fail('xfcc_untrusted', `the nearest element was added by ${JSON.stringify(element.by.slice(0, 256))}, not a trusted proxy`);
  }
  return { ok: true, element };
}

/** Joins the header's values as Envoy would (`,`), or returns undefined when absent. */
export function xfccHeaderValue(headers: ReadonlyMap<string, readonly string[]>): string | undefined {
  const values = headers.get(XFCC_HEADER);
  if (values === undefined || values.length === 0) return undefined;
  const joined = values.join(',');
  return joined.trim() === '' ? undefined : joined;
}
