/**
 * The syntax of match patterns, shared by the config schema (validation at load) and the rule
 * compiler (matching at run time), so that what loads is exactly what can match. Pure: imports
 * only the core's path normalization.
 */
import { normalizePath } from '../core/path.js';

/**
 * A host pattern: a DNS name, an IPv4 address or a bracketed IPv6 address, optionally starting
 * with `*.` (a suffix wildcard). No port, no other wildcard position. Case-insensitive (lower-cased
 * when compiled). Written without regex flags so the JSON Schema carries it unchanged.
 */
export const HOST_PATTERN =
  /^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$|^\[[0-9A-Fa-f:.]+\]$/;

/** An HTTP method token (RFC 9110); compiled to upper case. */
export const METHOD_PATTERN = /^[A-Za-z]{1,32}$/;

/**
 * A gRPC service (`package.Service`) or method (`package.Service/Method`), with or without the
 * leading `/` of the HTTP/2 path. Proto identifiers: letters, digits, `_`, not starting with a digit.
 */
export const GRPC_PATTERN = /^\/?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\/[A-Za-z_][A-Za-z0-9_]*)?$/;

/** A rule name: short, log- and metric-label-safe. */
export const RULE_NAME_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * A path pattern (`exact` or `prefix`) is valid when it is a path without `?`/`#` that is already
 * in the normalized form requests are matched in (core/path.ts): otherwise it could never match.
 */
export function pathPatternProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'must start with "/"';
  if (path.includes('?') || path.includes('#')) return 'must not contain a query or fragment';
  if (/\s/.test(path)) return 'must not contain whitespace';
  const normalized = normalizePath(path);
  if (!normalized.ok) return `must be a normalized path, but has ${normalized.problem}`;
  if (normalized.path !== path) return `must be written normalized, as ${JSON.stringify(normalized.path)}`;
  return undefined;
}

/**
 * The host a request is matched on: lower-case (already), without port and without a trailing
 * dot. `[::1]:8443` → `[::1]`, `api.example.com.:443` → `api.example.com`.
 */
export function hostForMatching(host: string): string {
  let h = host;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(':');
  if (colon !== -1) h = h.slice(0, colon);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** A compiled host pattern. */
export type HostMatcher = { readonly kind: 'exact'; readonly host: string } | { readonly kind: 'suffix'; readonly suffix: string };

export function compileHost(pattern: string): HostMatcher {
  const p = pattern.toLowerCase();
  return p.startsWith('*.') ? { kind: 'suffix', suffix: p.slice(1) } : { kind: 'exact', host: p };
}

/** gRPC path pattern → the exact path of a method (`/pkg.Svc/M`) or the prefix of a service (`/pkg.Svc/`). */
export function compileGrpc(pattern: string): { readonly kind: 'method'; readonly path: string } | { readonly kind: 'service'; readonly prefix: string } {
  const p = pattern.startsWith('/') ? pattern.slice(1) : pattern;
  return p.includes('/') ? { kind: 'method', path: `/${p}` } : { kind: 'service', prefix: `/${p}/` };
}

/**
 * For a path shaped like a gRPC call (`/a.b.Svc/Method`: exactly two segments), the service
 * prefix `/a.b.Svc/`; otherwise ''. Computed once per request.
 */
export function grpcServicePrefix(path: string): string {
  const second = path.indexOf('/', 1);
  if (second <= 1 || second === path.length - 1) return '';
  if (path.indexOf('/', second + 1) !== -1) return '';
  return path.slice(0, second + 1);
}

/** Segment-aware prefix, compiled: `/api/` and `/api` both become `/api`; `/` becomes ''. */
export function compilePrefix(prefix: string): string {
  return prefix.replace(/\/+$/, '');
}

/** `/api` matches `/api` and `/api/...`, never `/apiary`. `''` (from `/`) matches every path. */
export function prefixMatches(compiled: string, path: string): boolean {
  if (compiled === '') return true;
  return path.startsWith(compiled) && (path.length === compiled.length || path.charCodeAt(compiled.length) === 47);
}
