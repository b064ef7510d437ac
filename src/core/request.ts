import { normalizePath } from './path.js';
import { isRecord } from './values.js';

/**
 * The normalized view of an Envoy CheckRequest, built once per check. Everything downstream reads
 * this view, never the protobuf object: header names are lower-case, sizes are capped, and no field
 * is undefined where a string is expected.
 */

export interface PeerView {
  readonly address: string;
  readonly port: number;
  /** Envoy's `principal`: first URI SAN, else first DNS SAN, else Subject of the peer certificate. */
  readonly principal: string;
  /** URL-encoded PEM as Envoy sends it (`include_peer_certificate: true`), or ''. */
  readonly certificate: string;
}

export interface RequestView {
  /** Envoy's stream id (not x-request-id). */
  readonly envoyId: string;
  readonly method: string;
  readonly host: string;
  /**
   * Path without the query string or fragment, normalized as rules see it (see core/path.ts):
   * percent-encoded unreserved characters decoded. As sent when it cannot be normalized.
   */
  readonly path: string;
  /** Why the path cannot be normalized safely (refused where rules match on paths), or ''. */
  readonly pathProblem: string;
  /** The query string without its `?`, or ''. */
  readonly query: string;
  readonly scheme: string;
  readonly protocol: string;
  /** Lower-case header name → values (Envoy joins repeats with ',', `header_map` keeps them apart). */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly contextExtensions: Readonly<Record<string, string>>;
  readonly source: PeerView;
  readonly destination: PeerView;
  /** The `x-request-id` header, or ''. */
  readonly requestId: string;
}

/** Which front door a check came through: Envoy's gRPC Check, or an HTTP authorization request. */
export type CheckMode = 'grpc' | 'http';

export interface RequestLimits {
  /** Largest single header value kept; a larger one makes the request malformed. */
  readonly maxHeaderBytes: number;
  /** Most headers kept; more make the request malformed. */
  readonly maxHeaders: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxHeaderBytes: 256 * 1024, maxHeaders: 512 };

export type NormalizeResult =
  | { readonly ok: true; readonly request: RequestView }
  | { readonly ok: false; readonly detail: string };

/** Stands for a message that was not a decodable CheckRequest (see server/protos.ts). */
export const UNDECODABLE_REQUEST: unique symbol = Symbol('undecodable CheckRequest');

type Obj = Record<string, unknown>;

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const obj = (v: unknown): Obj => (isRecord(v) ? v : {});

function peer(v: unknown): PeerView {
  const p = obj(v);
  const socket = obj(obj(p['address'])['socket_address']);
  const port = Number(socket['port_value']);
  return {
    address: str(socket['address']),
    port: Number.isInteger(port) && port >= 0 && port <= 65535 ? port : 0,
    principal: str(p['principal']),
    certificate: str(p['certificate']),
  };
}

function headerValue(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  // header_map entries carry `value` or, for non-UTF-8 values, `raw_value` bytes.
  if (raw instanceof Uint8Array) return Buffer.from(raw).toString('latin1');
  return undefined;
}

/** Collects headers from either `headers` (map) or `header_map` (repeated HeaderValue). */
function collectHeaders(http: Obj, limits: RequestLimits): Map<string, string[]> | string {
  const out = new Map<string, string[]>();
  let count = 0;
  const add = (name: unknown, value: unknown): string | undefined => {
    if (typeof name !== 'string' || name.length === 0) return 'a header has no name';
    const v = headerValue(value);
    if (v === undefined) return `header ${JSON.stringify(name.slice(0, 64))} has no value`;
    if (v.length > limits.maxHeaderBytes || name.length > limits.maxHeaderBytes) {
      return `header ${JSON.stringify(name.slice(0, 64))} exceeds ${limits.maxHeaderBytes} bytes`;
    }
    if (++count > limits.maxHeaders) return `more than ${limits.maxHeaders} headers`;
    const key = name.toLowerCase();
    const list = out.get(key);
    if (list) list.push(v);
    else out.set(key, [v]);
    return undefined;
  };

  const headers = http['headers'];
  if (isRecord(headers)) {
    for (const [name, value] of Object.entries(headers)) {
      const problem = add(name, value);
      if (problem) return problem;
    }
  }
  const headerMap = obj(http['header_map'])['headers'];
  if (Array.isArray(headerMap)) {
    for (const entry of headerMap) {
      const e = obj(entry);
      const value = typeof e['value'] === 'string' && e['value'] !== '' ? e['value'] : e['raw_value'];
      const problem = add(e['key'], value ?? '');
      if (problem) return problem;
    }
  }
  return out;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  if (!isRecord(v)) return out;
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return Object.freeze(out);
}

/**
 * Builds the request view from a decoded CheckRequest of any shape. Never throws: anything that is
 * not an Envoy-shaped HTTP check comes back as `{ ok: false }` with a detail for the audit log.
 */
export function normalizeCheckRequest(raw: unknown, limits: RequestLimits = DEFAULT_REQUEST_LIMITS): NormalizeResult {
  if (raw === UNDECODABLE_REQUEST) return { ok: false, detail: 'the CheckRequest is not valid protobuf' };
  try {
    const attributes = raw && isRecord(raw) ? raw['attributes'] : undefined;
    if (!isRecord(attributes)) return { ok: false, detail: 'the request has no attributes' };
    const request = attributes['request'];
    if (!isRecord(request) || !isRecord(request['http'])) return { ok: false, detail: 'the request has no http section' };
    const http = request['http'];
    const headers = collectHeaders(http, limits);
    if (typeof headers === 'string') return { ok: false, detail: headers };

    const first = (name: string): string => headers.get(name)?.[0] ?? '';
    const rawPath = str(http['path']) || first(':path');
    const method = str(http['method']) || first(':method');
    const host = str(http['host']) || first(':authority') || first('host');
    if (rawPath === '' || method === '') return { ok: false, detail: 'the request has no path or method' };
    if (rawPath.length > limits.maxHeaderBytes) return { ok: false, detail: 'the path is too long' };

    const hash = rawPath.indexOf('#');
    const withoutFragment = hash === -1 ? rawPath : rawPath.slice(0, hash);
    const q = withoutFragment.indexOf('?');
    const path = q === -1 ? withoutFragment : withoutFragment.slice(0, q);
    const normalizedPath = normalizePath(path);
    return {
      ok: true,
      request: {
        envoyId: str(http['id']),
        method: method.toUpperCase(),
        host: host.toLowerCase(),
        path: normalizedPath.ok ? normalizedPath.path : path,
        pathProblem: normalizedPath.ok ? '' : normalizedPath.problem,
        query: q === -1 ? '' : withoutFragment.slice(q + 1),
        scheme: str(http['scheme']) || first(':scheme'),
        protocol: str(http['protocol']),
        headers,
        contextExtensions: stringMap(attributes['context_extensions']),
        source: peer(attributes['source']),
        destination: peer(attributes['destination']),
        requestId: first('x-request-id'),
      },
    };
  } catch (err) {
    // A getter or proxy that throws: still a deny, never an exception into grpc-js.
    return { ok: false, detail: `the request could not be read: ${(err as Error).name}` };
  }
}
