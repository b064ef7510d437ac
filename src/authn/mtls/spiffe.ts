/**
 * SPIFFE IDs, SPIFFE ID patterns and DNS name patterns: parsed and compiled once at config load,
 * matched per request without regular expressions (no backtracking, linear in the ID's length).
 *
 * SPIFFE ID syntax follows the SPIFFE-ID specification: `spiffe://<trust-domain>[/<segment>...]`,
 * trust domain `[a-z0-9._-]`, segments `[A-Za-z0-9._-]`, no empty, `.` or `..` segments, no trailing
 * slash, no query, fragment, port or user info, at most 2048 bytes.
 */

export const MAX_SPIFFE_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;
const MAX_DNS_NAME_LENGTH = 253;

export interface SpiffeId {
  readonly trustDomain: string;
  readonly segments: readonly string[];
}

const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]+$/;
const SEGMENT_CHAR = /^[A-Za-z0-9._-]+$/;
const DNS_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Parses a SPIFFE ID strictly; `undefined` for anything that is not one. */
export function parseSpiffeId(value: string): SpiffeId | undefined {
  const parsed = splitSpiffe(value);
  if (typeof parsed === 'string') return undefined;
  for (const segment of parsed.segments) if (!validSegment(segment)) return undefined;
  return parsed;
}

function validSegment(segment: string): boolean {
  return SEGMENT_CHAR.test(segment) && segment !== '.' && segment !== '..';
}

/** Splits `spiffe://td/a/b` into trust domain and raw segments, checking all but segment syntax. */
function splitSpiffe(value: string): SpiffeId | string {
  if (value.length > MAX_SPIFFE_ID_LENGTH) return `longer than ${MAX_SPIFFE_ID_LENGTH} bytes`;
  if (!value.startsWith('spiffe://')) return 'must start with spiffe:// (lower case)';
  const rest = value.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (trustDomain === '') return 'the trust domain is empty';
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) return 'the trust domain is too long';
  if (!TRUST_DOMAIN_CHAR.test(trustDomain)) {
    return 'the trust domain may only contain lower-case letters, digits, ".", "-" and "_" (no wildcards, ports or user info)';
  }
  if (slash === -1) return { trustDomain, segments: [] };
  const path = rest.slice(slash + 1);
  if (path === '') return 'a trailing "/" is not allowed';
  return { trustDomain, segments: path.split('/') };
}

/** Matches a SPIFFE ID (already parsed) against a compiled pattern. */
export type SpiffeMatcher = (id: SpiffeId) => boolean;

export type CompileResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

/**
 * Compiles a SPIFFE ID pattern. Wildcards stand for whole path segments only:
 * `*` matches exactly one segment, `**` (last segment only) matches one or more. The trust domain
 * is always literal: a pattern can never widen trust to another trust domain.
 *
 * `spiffe://cluster.local/ns/shop/sa/*`  → every service account in namespace shop
 * `spiffe://cluster.local/ns/shop/**`    → every identity under /ns/shop/
 */
export function compileSpiffePattern(pattern: string): CompileResult<SpiffeMatcher> {
  const parsed = splitSpiffe(pattern);
  if (typeof parsed === 'string') return { ok: false, problem: parsed };
  const { trustDomain, segments } = parsed;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] ?? '';
    if (segment === '*') continue;
    if (segment === '**') {
      if (i !== segments.length - 1) return { ok: false, problem: '"**" is only allowed as the last segment' };
      continue;
    }
    if (segment.includes('*')) return { ok: false, problem: `wildcards must be whole segments ("${segment}")` };
    if (segment === '') return { ok: false, problem: 'empty path segments ("//") are not allowed' };
    if (!validSegment(segment)) {
      return { ok: false, problem: `path segment "${segment}" is not allowed (letters, digits, ".", "-", "_"; no "." or "..")` };
    }
  }
  const tail = segments[segments.length - 1] === '**';
  const fixed = tail ? segments.slice(0, -1) : segments;
  return {
    ok: true,
    value: (id) => {
      if (id.trustDomain !== trustDomain) return false;
      if (tail ? id.segments.length <= fixed.length : id.segments.length !== fixed.length) return false;
      for (let i = 0; i < fixed.length; i++) {
        if (fixed[i] !== '*' && fixed[i] !== id.segments[i]) return false;
      }
      return true;
    },
  };
}

/** Checks an exact SPIFFE ID from configuration. */
export function checkSpiffeId(value: string): string | undefined {
  const parsed = splitSpiffe(value);
  if (typeof parsed === 'string') return parsed;
  for (const segment of parsed.segments) {
    if (segment.includes('*')) return 'wildcards belong in spiffePatterns, not spiffeIds';
    if (segment === '') return 'empty path segments ("//") are not allowed';
    if (!validSegment(segment)) return `path segment "${segment}" is not allowed`;
  }
  return undefined;
}

/** Whether a string is a syntactically valid DNS name (lower-case it first). */
export function isDnsName(value: string): boolean {
  if (value.length === 0 || value.length > MAX_DNS_NAME_LENGTH) return false;
  return value.split('.').every((label) => DNS_LABEL.test(label));
}

/**
 * Compiles a DNS name pattern: an exact name, or `*.example.com` matching exactly one extra label
 * (`a.example.com`, not `example.com` nor `a.b.example.com`). Comparison is case-insensitive.
 * A wildcard certificate SAN (`*.example.com`) is compared literally, never expanded.
 */
export function compileDnsPattern(pattern: string): CompileResult<(name: string) => boolean> {
  const p = pattern.toLowerCase();
  if (p.startsWith('*.')) {
    const suffix = p.slice(1); // ".example.com"
    if (!isDnsName(suffix.slice(1)) || !suffix.slice(1).includes('.')) {
      return { ok: false, problem: `"${pattern}" is not a valid wildcard DNS name (expected *.domain.tld)` };
    }
    return {
      ok: true,
      value: (name) => {
        const n = name.toLowerCase();
        if (!n.endsWith(suffix)) return false;
        const label = n.slice(0, n.length - suffix.length);
        return label.length > 0 && !label.includes('.') && label !== '*';
      },
    };
  }
  if (p.includes('*')) return { ok: false, problem: `"${pattern}": only a leading "*." wildcard is allowed` };
  if (!isDnsName(p)) return { ok: false, problem: `"${pattern}" is not a valid DNS name` };
  return { ok: true, value: (name) => name.toLowerCase() === p };
}

/** The parts of a peer an identity pattern is matched against. */
export interface MatchableIdentity {
  readonly spiffeId: string | undefined;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
}

export type IdentityMatcher = (peer: MatchableIdentity) => boolean;

const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * Compiles one allow-list entry of unknown kind: `spiffe://...` is a SPIFFE ID or pattern (matched
 * against the peer's SPIFFE ID), any other `scheme:...` an exact URI SAN, anything else a DNS name
 * pattern (matched against DNS SANs).
 */
export function compileIdentityPattern(entry: string): CompileResult<IdentityMatcher> {
  if (entry.startsWith('spiffe://')) {
    const compiled = compileSpiffePattern(entry);
    if (!compiled.ok) return compiled;
    const match = compiled.value;
    return { ok: true, value: (peer) => spiffeMatches(peer.spiffeId, match) };
  }
  if (URI_SCHEME.test(entry)) {
    if (entry.toLowerCase().startsWith('spiffe:')) return { ok: false, problem: 'SPIFFE IDs start with spiffe:// in lower case' };
    if (entry.length > MAX_SPIFFE_ID_LENGTH || !/^[\x21-\x7e]+$/.test(entry)) {
      return { ok: false, problem: `"${entry.slice(0, 64)}" is not a valid URI` };
    }
    return { ok: true, value: (peer) => peer.uriSans.includes(entry) };
  }
  const compiled = compileDnsPattern(entry);
  if (!compiled.ok) return compiled;
  const match = compiled.value;
  return { ok: true, value: (peer) => peer.dnsSans.some(match) };
}

/** Matches a peer's SPIFFE ID string against a compiled pattern (false when it has none). */
export function spiffeMatches(spiffeId: string | undefined, match: SpiffeMatcher): boolean {
  if (spiffeId === undefined) return false;
  const parsed = parseSpiffeId(spiffeId);
  return parsed !== undefined && match(parsed);
}
