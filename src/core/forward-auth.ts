import { normalizePath } from './path.js';
import { DEFAULT_REQUEST_LIMITS, type PeerView, type RequestLimits, type RequestView } from './request.js';

/**
 * HTTP authorization requests ("forward auth") → the normalized request view. Each proxy sends the
 * original request in its own shape, and each shape has its own endpoint on the HTTP listener, so
 * a header that means something in one shape (say `X-Original-URI`) is never read in another:
 *
 * - `envoy` — Envoy's `http_service` (and Istio's `envoyExtAuthzHttp`): the original method, and
 *   the original path behind the configured `path_prefix` (`/envoy`); the Host header is the
 *   original host.
 * - `nginx` — nginx `auth_request`: `X-Original-Method`, `X-Original-URI`, `X-Original-Host` and
 *   optionally `X-Original-Proto`, set by the proxy configuration.
 * - `forwarded` — Caddy `forward_auth` and Traefik ForwardAuth: `X-Forwarded-Method`, `-Uri`,
 *   `-Host` and optionally `-Proto`.
 *
 * These headers are only as trustworthy as the proxy that wrote them: the shipped proxy
 * configurations overwrite them on every request. Anything missing, repeated, oversized or not in
 * origin form is refused (the caller turns that into `request_malformed`), never guessed at.
 */

export type ForwardAuthShape = 'envoy' | 'nginx' | 'forwarded';

/** Paths of the HTTP listener: the Envoy prefix (original path follows it) and the two fixed endpoints. */
export const FORWARD_AUTH_PATHS = {
  envoyPrefix: '/envoy',
  nginx: '/nginx',
  forwarded: '/forward-auth',
} as const;

/** The authorization request as the HTTP listener received it. */
export interface ForwardAuthRequest {
  /** Method of the authorization request itself. */
  readonly method: string;
  /** Its request target (Node's `req.url`). */
  readonly target: string;
  /** Node's `rawHeaders`: name, value, name, value… in arrival order, repeats kept apart. */
  readonly rawHeaders: readonly string[];
  /** `HTTP/1.1`, `HTTP/2`. */
  readonly protocol: string;
}

/** Each endpoint's template: the low-cardinality name telemetry gives it (`http.route`). */
export const FORWARD_AUTH_ROUTES: Readonly<Record<ForwardAuthShape, string>> = {
  envoy: `${FORWARD_AUTH_PATHS.envoyPrefix}/*`,
  nginx: FORWARD_AUTH_PATHS.nginx,
  forwarded: FORWARD_AUTH_PATHS.forwarded,
};

export type ForwardAuthParse =
  | { readonly ok: true; readonly shape: ForwardAuthShape; readonly request: RequestView }
  | { readonly ok: false; readonly shape: ForwardAuthShape | undefined; readonly detail: string };

/** Header names each shape reads the original request from (lower-case). */
export const ORIGINAL_REQUEST_HEADERS = {
  nginx: { method: 'x-original-method', uri: 'x-original-uri', host: 'x-original-host', proto: 'x-original-proto' },
  forwarded: { method: 'x-forwarded-method', uri: 'x-forwarded-uri', host: 'x-forwarded-host', proto: 'x-forwarded-proto' },
} as const;

/** Longest original URI accepted; longer ones are refused before any matching. */
export const MAX_ORIGINAL_URI_BYTES = 8 * 1024;

// RFC 9110 token characters; real methods are short.
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/;
// A host name or IPv4 address, or a bracketed IPv6 address, with an optional port.
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
// Origin form: an absolute path and optional query, visible ASCII only (no spaces, controls, '#').
const ORIGIN_FORM = /^\/[\x21\x22\x24-\x7e]*$/;
const PROTO = /^https?$/;

const NO_PEER: PeerView = Object.freeze({ address: '', port: 0, principal: '', certificate: '' });

/** Which shape an authorization request's target asks for, and for Envoy the original path. */
function route(target: string): { shape: ForwardAuthShape; envoyPath?: string } | undefined {
  const { envoyPrefix, nginx, forwarded } = FORWARD_AUTH_PATHS;
  if (target.startsWith(`${envoyPrefix}/`)) return { shape: 'envoy', envoyPath: target.slice(envoyPrefix.length) };
  const path = target.split('?', 1)[0];
  if (path === nginx) return { shape: 'nginx' };
  if (path === forwarded) return { shape: 'forwarded' };
  return undefined;
}

function collectHeaders(raw: readonly string[], limits: RequestLimits): Map<string, string[]> | string {
  if (raw.length % 2 !== 0) return 'the header list is not name/value pairs';
  if (raw.length / 2 > limits.maxHeaders) return `more than ${limits.maxHeaders} headers`;
  const out = new Map<string, string[]>();
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] ?? '').toLowerCase();
    const value = raw[i + 1] ?? '';
    if (name === '') return 'a header has no name';
    if (name.length + value.length > limits.maxHeaderBytes) {
      return `header ${JSON.stringify(name.slice(0, 64))} exceeds ${limits.maxHeaderBytes} bytes`;
    }
    const list = out.get(name);
    if (list) list.push(value);
    else out.set(name, [value]);
  }
  return out;
}

/** Exactly one value of a control header, or why not. */
function single(headers: ReadonlyMap<string, readonly string[]>, name: string, required: boolean): string | { problem: string } {
  const values = headers.get(name);
  if (values === undefined || values.length === 0) return required ? { problem: `no ${name} header` } : '';
  if (values.length > 1) return { problem: `${values.length} ${name} headers` };
  const value = (values[0] ?? '').trim();
  if (value === '' && required) return { problem: `empty ${name} header` };
  return value;
}

interface OriginalRequest {
  readonly method: string;
  readonly uri: string;
  readonly host: string;
  /** '' when the proxy did not say. */
  readonly proto: string;
}

/** The original method, URI, host and scheme as the shape carries them (not yet checked). */
function readOriginal(
  shape: ForwardAuthShape,
  envoyPath: string | undefined,
  authMethod: string,
  headers: ReadonlyMap<string, readonly string[]>,
): OriginalRequest | { problem: string } {
  const names = shape === 'envoy' ? undefined : ORIGINAL_REQUEST_HEADERS[shape];
  const fields = {
    // Envoy reuses the original method and path (behind the prefix) and the original Host header.
    method: names ? single(headers, names.method, true) : authMethod,
    uri: names ? single(headers, names.uri, true) : (envoyPath ?? ''),
    host: single(headers, names?.host ?? 'host', true),
    proto: single(headers, names?.proto ?? 'x-forwarded-proto', false),
  };
  for (const v of Object.values(fields)) if (typeof v !== 'string') return v;
  return fields as OriginalRequest;
}

/** Checks an original URI: origin form (`/path?query`), bounded, no fragment. */
export function checkOriginalUri(uri: string): string | undefined {
  if (uri.length > MAX_ORIGINAL_URI_BYTES) return `the original URI exceeds ${MAX_ORIGINAL_URI_BYTES} bytes`;
  if (!uri.startsWith('/')) {
    return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(uri) ? 'the original URI is absolute, not a path' : 'the original URI is relative, not a path';
  }
  if (!ORIGIN_FORM.test(uri)) return 'the original URI has characters outside a path and query';
  return undefined;
}

const quoted = (v: string): string => JSON.stringify(v.slice(0, 64));

/**
 * Builds the request view from an HTTP authorization request. Never throws: anything that cannot
 * be read unambiguously comes back as `{ ok: false }` with a detail for the audit log.
 */
export function parseForwardAuthRequest(req: ForwardAuthRequest, limits: RequestLimits = DEFAULT_REQUEST_LIMITS): ForwardAuthParse {
  const routed = route(req.target);
  if (routed === undefined) return { ok: false, shape: undefined, detail: `no authorization endpoint at ${quoted(req.target.split('?', 1)[0] ?? '')}` };
  const { shape } = routed;
  const fail = (detail: string): ForwardAuthParse => ({ ok: false, shape, detail });

  const headers = collectHeaders(req.rawHeaders, limits);
  if (typeof headers === 'string') return fail(headers);

  const original = readOriginal(shape, routed.envoyPath, req.method, headers);
  if ('problem' in original) return fail(original.problem);
  const { method, uri, host, proto } = original;

  if (!METHOD.test(method)) return fail(`the original method ${quoted(method)} is not an HTTP method`);
  const uriProblem = checkOriginalUri(uri);
  if (uriProblem) return fail(uriProblem);
  if (!HOST.test(host)) return fail(`the original host ${quoted(host)} is not a host name`);
  const scheme = proto.toLowerCase();
  if (scheme !== '' && !PROTO.test(scheme)) return fail(`the original scheme ${quoted(scheme)} is not http or https`);

  const q = uri.indexOf('?');
  const path = q === -1 ? uri : uri.slice(0, q);
  // Normalized as for a CheckRequest, so rules see the same path whichever door the request took.
  const normalized = normalizePath(path);
  return {
    ok: true,
    shape,
    request: {
      envoyId: '',
      method: method.toUpperCase(),
      host: host.toLowerCase(),
      path: normalized.ok ? normalized.path : path,
      pathProblem: normalized.ok ? '' : normalized.problem,
      query: q === -1 ? '' : uri.slice(q + 1),
      scheme,
      protocol: req.protocol,
      headers,
      contextExtensions: Object.freeze(Object.create(null) as Record<string, string>),
      source: NO_PEER,
      destination: NO_PEER,
      requestId: headers.get('x-request-id')?.[0] ?? '',
    },
  };
}

/**
 * The authorization request's own endpoint as telemetry may show it: its template, and its path
 * without the query — for Envoy the prefix and the normalised original path, and nothing when that
 * path could not be read or normalised. An unknown endpoint gets neither: its path is client input.
 */
export function forwardAuthEndpoint(parsed: ForwardAuthParse): { readonly route?: string; readonly path?: string } {
  if (parsed.shape === undefined) return {};
  const route = FORWARD_AUTH_ROUTES[parsed.shape];
  if (parsed.shape !== 'envoy') return { route, path: route };
  if (!parsed.ok || parsed.request.pathProblem !== '') return { route };
  return { route, path: `${FORWARD_AUTH_PATHS.envoyPrefix}${parsed.request.path}` };
}
