/**
 * The request path rules are matched on: the path an upstream will act on once it decodes it.
 *
 * Why: rules compare strings, upstreams compare decoded resources. `/orders.v1.Orders/%44elete`
 * is `/orders.v1.Orders/Delete` to any upstream that decodes, so an exact rule for `Delete` must
 * see it as such, not let it fall through to a broader rule. Pure: no imports.
 *
 * What is done (RFC 3986 §2.3, §6.2.2, as Envoy's `normalize_path` would):
 * - percent-encoded unreserved characters (letters, digits, `-`, `_`, `~`) are decoded;
 * - every other percent-encoding is kept, with upper-case hex digits (`%3b` → `%3B`).
 *
 * What is refused, because an upstream could read it as another path or as no path at all:
 * - an encoded `.` (`%2E`), `/` (`%2F`) or `\` (`%5C`): they change the segments once decoded;
 * - an encoded control character (`%00`–`%1F`, `%7F`) and a malformed escape (`%`, `%4`, `%zz`);
 * - a raw backslash or control character;
 * - a `.` or `..` segment (Envoy's `normalize_path` resolves these before ext_authz);
 * - an empty segment (`//`): Envoy's `merge_slashes` merges these; upstreams disagree on them;
 * - a `;` (path parameters): Tomcat, Jetty and Spring drop `;params` from each segment before
 *   routing (`/admin;x=1` is `/admin` to them, `/public/..;/admin` is `/admin`), other upstreams
 *   keep them, so no single reading is safe.
 */

export type PathNormalization = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly problem: string };

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  const upper = c & ~0x20;
  if (upper >= 65 && upper <= 70) return upper - 55; // A-F
  return -1;
}

/** RFC 3986 §2.3 unreserved, minus `.` (see above). */
function isDecodable(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2d || // -
    byte === 0x5f || // _
    byte === 0x7e // ~
  );
}

/** Encodings whose decoded byte would change the segments or inject a control character. */
function refusedEncoding(byte: number): string | undefined {
  if (byte === 0x2e) return 'an encoded "." (%2E)';
  if (byte === 0x2f) return 'an encoded "/" (%2F)';
  if (byte === 0x5c) return 'an encoded "\\" (%5C)';
  if (byte < 0x20 || byte === 0x7f) return 'an encoded control character';
  return undefined;
}

function segmentProblem(path: string): string | undefined {
  let start = 1;
  for (;;) {
    const end = path.indexOf('/', start);
    const segment = end === -1 ? path.slice(start) : path.slice(start, end);
    if (segment === '.' || segment === '..') return `a "${segment}" segment`;
    // An empty segment is only allowed as the trailing one (`/api/`), never in the middle.
    if (segment === '' && end !== -1) return 'an empty segment ("//")';
    if (end === -1) return undefined;
    start = end + 1;
  }
}

/**
 * Normalizes a request path (query and fragment already removed), or says why it cannot be done
 * safely. The result of a successful normalization normalizes to itself.
 */
export function normalizePath(path: string): PathNormalization {
  if (path.charCodeAt(0) !== 47 /* / */) return { ok: false, problem: 'no leading "/"' };
  let out = '';
  let copiedUpTo = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return { ok: false, problem: 'a control character' };
    if (c === 0x5c) return { ok: false, problem: 'a backslash' };
    if (c === 0x3b) return { ok: false, problem: 'a ";" (path parameters)' };
    if (c !== 0x25 /* % */) continue;
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi === -1 || lo === -1) return { ok: false, problem: 'an invalid percent-encoding' };
    const byte = hi * 16 + lo;
    const refused = refusedEncoding(byte);
    if (refused !== undefined) return { ok: false, problem: refused };
    out += path.slice(copiedUpTo, i) + (isDecodable(byte) ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`);
    copiedUpTo = i + 3;
    i += 2;
  }
  const normalized = copiedUpTo === 0 ? path : out + path.slice(copiedUpTo);
  const problem = segmentProblem(normalized);
  return problem === undefined ? { ok: true, path: normalized } : { ok: false, problem };
}
