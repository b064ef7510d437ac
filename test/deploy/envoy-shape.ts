import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * Builds envoy.service.auth.v3.CheckRequest objects exactly as the Envoy configs in envoy/ make
 * Envoy send them: per-route `context_extensions`, the URL-encoded peer certificate
 * (`include_peer_certificate`), `x-forwarded-client-cert` as `forward_client_cert_details` /
 * `set_current_client_cert_details` produce it, pseudo-headers, `x-request-id`, `x-forwarded-*`.
 *
 * Objects use the proto field names (snake_case), i.e. what @grpc/proto-loader with
 * `keepCase: true` takes, so they can be sent with a grpc-js client or fed to the server's handler.
 *
 * What is approximated: Envoy's stream id (random), addresses (the defaults below), and the
 * `Subject` in XFCC is rendered RFC 2253-style from node's parse of the certificate (plain ASCII
 * names render exactly as Envoy does).
 */

const HERE = dirname(fileURLToPath(import.meta.url));
/** Repository root (test/deploy/../..). */
export const REPO_ROOT = join(HERE, '..', '..');
export const FRONT_PROXY_CONFIG = join(REPO_ROOT, 'envoy', 'envoy.yaml');
export const SIDECAR_CONFIG = join(REPO_ROOT, 'envoy', 'sidecar.yaml');

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const EXT_AUTHZ_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const EXT_AUTHZ_PER_ROUTE_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export type XfccMode = 'SANITIZE' | 'FORWARD_ONLY' | 'APPEND_FORWARD' | 'SANITIZE_SET' | 'ALWAYS_FORWARD_ONLY';

export interface XfccSettings {
  readonly mode: XfccMode;
  readonly subject: boolean;
  readonly cert: boolean;
  readonly chain: boolean;
  readonly uri: boolean;
  readonly dns: boolean;
}

export interface EnvoyRoute {
  readonly virtualHost: string;
  readonly name: string;
  /** The route's match: exactly one of path / prefix (the configs in envoy/ use only these). */
  readonly match: { readonly path?: string; readonly prefix?: string; readonly grpc: boolean };
  /** A request path this route matches (the exact path, or the prefix itself). */
  readonly samplePath: string;
  /** `ExtAuthzPerRoute.disabled`: Envoy does not call entra-authz at all for this route. */
  readonly extAuthzDisabled: boolean;
  /** Virtual-host context extensions overlaid by the route's own (Envoy merges them this way). */
  readonly contextExtensions: Readonly<Record<string, string>>;
  /** Upstream cluster, or undefined for a direct response. */
  readonly cluster?: string;
  readonly directResponseStatus?: number;
}

/** What a CheckRequest depends on, read from one Envoy bootstrap file. */
export interface EnvoyShape {
  readonly configPath: string;
  readonly listenerName: string;
  readonly listenerPort: number;
  /** `node.cluster`: Envoy reports it as `destination.service`. */
  readonly serviceCluster: string;
  readonly downstreamMtls: boolean;
  readonly useRemoteAddress: boolean;
  readonly xfcc: XfccSettings;
  readonly extAuthz: {
    readonly includePeerCertificate: boolean;
    readonly failureModeAllow: boolean;
    readonly statusOnError: string | undefined;
    readonly timeout: string | undefined;
    readonly cluster: string | undefined;
    readonly transportApiVersion: string | undefined;
  };
  readonly routes: readonly EnvoyRoute[];
}

/** Reads the listener with an HTTP connection manager and ext_authz from an Envoy bootstrap YAML. */
export function readEnvoyShape(configPath: string = FRONT_PROXY_CONFIG): EnvoyShape {
  const doc = obj(parse(readFileSync(configPath, 'utf8')));
  for (const listener of arr(obj(doc['static_resources'])['listeners'])) {
    const l = obj(listener);
    for (const chain of arr(l['filter_chains'])) {
      const c = obj(chain);
      const hcmFilter = arr(c['filters']).map(obj).find((f) => obj(f['typed_config'])['@type'] === HCM_TYPE);
      if (!hcmFilter) continue;
      const hcm = obj(hcmFilter['typed_config']);
      const extAuthzFilter = arr(hcm['http_filters']).map(obj).find((f) => obj(f['typed_config'])['@type'] === EXT_AUTHZ_TYPE);
      if (!extAuthzFilter) continue;
      const filterName = String(extAuthzFilter['name']);
      const ea = obj(extAuthzFilter['typed_config']);
      const grpc = obj(ea['grpc_service']);
      const tls = obj(obj(c['transport_socket'])['typed_config']);
      const setDetails = obj(hcm['set_current_client_cert_details']);
      const routes: EnvoyRoute[] = [];
      for (const vh of arr(obj(hcm['route_config'])['virtual_hosts']).map(obj)) {
        const vhPer = obj(obj(vh['typed_per_filter_config'])[filterName]);
        const vhExt = perRouteExtensions(vhPer);
        for (const r of arr(vh['routes']).map(obj)) {
          const m = obj(r['match']);
          const per = obj(obj(r['typed_per_filter_config'])[filterName]);
          if (Object.keys(per).length > 0 && per['@type'] !== EXT_AUTHZ_PER_ROUTE_TYPE) {
            throw new Error(`${configPath}: route ${String(r['name'])} has per-filter config of type ${String(per['@type'])}`);
          }
          const path = typeof m['path'] === 'string' ? m['path'] : undefined;
          const prefix = typeof m['prefix'] === 'string' ? m['prefix'] : undefined;
          if (path === undefined && prefix === undefined) {
            throw new Error(`${configPath}: route ${String(r['name'])} matches neither by path nor prefix; extend envoy-shape.ts`);
          }
          const direct = obj(r['direct_response']);
          routes.push({
            virtualHost: String(vh['name']),
            name: String(r['name'] ?? ''),
            match: { ...(path !== undefined ? { path } : {}), ...(prefix !== undefined ? { prefix } : {}), grpc: isObj(m['grpc']) },
            samplePath: path ?? prefix ?? '/',
            extAuthzDisabled: per['disabled'] === true || vhPer['disabled'] === true,
            contextExtensions: Object.freeze({ ...vhExt, ...perRouteExtensions(per) }),
            ...(typeof obj(r['route'])['cluster'] === 'string' ? { cluster: obj(r['route'])['cluster'] as string } : {}),
            ...(typeof direct['status'] === 'number' ? { directResponseStatus: direct['status'] } : {}),
          });
        }
      }
      return {
        configPath,
        listenerName: String(l['name']),
        listenerPort: Number(obj(obj(l['address'])['socket_address'])['port_value']),
        serviceCluster: String(obj(doc['node'])['cluster'] ?? ''),
        downstreamMtls: tls['require_client_certificate'] === true,
        useRemoteAddress: hcm['use_remote_address'] === true,
        xfcc: {
          mode: (hcm['forward_client_cert_details'] as XfccMode | undefined) ?? 'SANITIZE',
          subject: setDetails['subject'] === true,
          cert: setDetails['cert'] === true,
          chain: setDetails['chain'] === true,
          uri: setDetails['uri'] === true,
          dns: setDetails['dns'] === true,
        },
        extAuthz: {
          includePeerCertificate: ea['include_peer_certificate'] === true,
          failureModeAllow: ea['failure_mode_allow'] === true,
          statusOnError: obj(ea['status_on_error'])['code'] as string | undefined,
          timeout: grpc['timeout'] as string | undefined,
          cluster: obj(grpc['envoy_grpc'])['cluster_name'] as string | undefined,
          transportApiVersion: ea['transport_api_version'] as string | undefined,
        },
        routes,
      };
    }
  }
  throw new Error(`${configPath}: no listener with an HTTP connection manager running ext_authz`);
}

function perRouteExtensions(per: Obj): Record<string, string> {
  const ext = obj(obj(per['check_settings'])['context_extensions']);
  return Object.fromEntries(Object.entries(ext).map(([k, v]) => [k, String(v)]));
}

/**
 * URL-encodes a PEM the way Envoy does for `source.certificate` and XFCC `Cert=`: exactly the
 * characters newline, space, `+`, `/` and `=` are replaced.
 */
export function envoyUrlEncodePem(pem: string): string {
  return pem.replace(/[\n +/=]/g, (c) => ({ '\n': '%0A', ' ': '%20', '+': '%2B', '/': '%2F', '=': '%3D' })[c] as string);
}

/** PEM as BoringSSL writes it (64-column base64, trailing newline): what Envoy encodes. */
export function canonicalPem(pemOrCert: string | X509Certificate): string {
  const cert = typeof pemOrCert === 'string' ? new X509Certificate(pemOrCert) : pemOrCert;
  const b64 = cert.raw.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

function sans(cert: X509Certificate): { uri: string[]; dns: string[] } {
  const uri: string[] = [];
  const dns: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('URI:')) uri.push(part.slice(4));
    else if (part.startsWith('DNS:')) dns.push(part.slice(4));
  }
  return { uri, dns };
}

/** The subject as RFC 2253 (`CN=x,O=y`: last RDN first), as Envoy reports it. */
export function rfc2253Subject(cert: X509Certificate): string {
  const escape = (v: string): string => v.replace(/([,+"\\<>;])/g, '\\$1').replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');
  return cert.subject
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const eq = l.indexOf('=');
      return `${l.slice(0, eq)}=${escape(l.slice(eq + 1))}`;
    })
    .reverse()
    .join(',');
}

/** Envoy's peer principal: the first URI SAN, else the first DNS SAN, else the subject. */
export function envoyPrincipal(certPem: string): string {
  const cert = new X509Certificate(certPem);
  const { uri, dns } = sans(cert);
  return uri[0] ?? dns[0] ?? rfc2253Subject(cert);
}

/** One XFCC element as Envoy appends it: By, Hash, Cert, Chain, Subject, URI, DNS in that order. */
export function xfccElement(settings: XfccSettings, clientCertPem: string, proxyCertPem: string, chainPems: readonly string[] = []): string {
  const client = new X509Certificate(clientCertPem);
  const proxy = new X509Certificate(proxyCertPem);
  const parts: string[] = [];
  for (const uri of sans(proxy).uri) parts.push(`By=${uri}`);
  parts.push(`Hash=${createHash('sha256').update(client.raw).digest('hex')}`);
  if (settings.cert) parts.push(`Cert="${envoyUrlEncodePem(canonicalPem(client))}"`);
  if (settings.chain) parts.push(`Chain="${envoyUrlEncodePem([client, ...chainPems.map((p) => new X509Certificate(p))].map(canonicalPem).join(''))}"`);
  if (settings.subject) parts.push(`Subject="${rfc2253Subject(client)}"`);
  if (settings.uri) {
    const uris = sans(client).uri;
    if (uris.length === 0) parts.push('URI=');
    for (const u of uris) parts.push(`URI=${u}`);
  }
  if (settings.dns) for (const d of sans(client).dns) parts.push(`DNS=${d}`);
  return parts.join(';');
}

/** The XFCC header Envoy forwards, given what the client sent (or undefined). */
export function xfccHeader(settings: XfccSettings, clientSent: string | undefined, clientCertPem: string | undefined, proxyCertPem: string): string | undefined {
  const own = clientCertPem !== undefined ? xfccElement(settings, clientCertPem, proxyCertPem) : undefined;
  switch (settings.mode) {
    case 'SANITIZE':
      return undefined;
    case 'FORWARD_ONLY':
      // Forwarded only on mTLS connections; sanitized otherwise.
      return clientCertPem !== undefined ? clientSent : undefined;
    case 'ALWAYS_FORWARD_ONLY':
      return clientSent;
    case 'APPEND_FORWARD':
      if (clientCertPem === undefined) return undefined;
      return clientSent !== undefined && clientSent !== '' ? `${clientSent},${own}` : own;
    case 'SANITIZE_SET':
      return own;
  }
}

/** A CheckRequest with proto field names, as @grpc/proto-loader (`keepCase: true`) takes it. */
export interface EnvoyCheckRequest {
  attributes: {
    source: EnvoyPeer;
    destination: EnvoyPeer;
    request: {
      time: { seconds: string; nanos: number };
      http: {
        id: string;
        method: string;
        headers: Record<string, string>;
        path: string;
        host: string;
        scheme: string;
        protocol: string;
      };
    };
    context_extensions: Record<string, string>;
    metadata_context: Record<string, never>;
  };
}

export interface EnvoyPeer {
  address: { socket_address: { address: string; port_value: number } };
  principal: string;
  service: string;
  certificate: string;
}

export interface CheckRequestOptions {
  /** PEM of the downstream client's leaf certificate (what Envoy verified); omit for a non-TLS caller. */
  readonly clientCertPem?: string;
  /** PEM of the proxy's own serving certificate: its URI SAN is XFCC `By=` and `destination.principal`. */
  readonly proxyCertPem: string;
  /** The whole `authorization` header value, e.g. `Bearer eyJ...`; omit to send none. */
  readonly authorization?: string;
  /** Extra request headers as the client sent them (names are lower-cased; repeated values pre-joined with ','). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Defaults to the route's sample path. */
  readonly path?: string;
  /** Defaults to POST on gRPC routes, GET otherwise. */
  readonly method?: string;
  /** `:authority`; default `envoy:<listener port>`. */
  readonly authority?: string;
  readonly clientAddress?: { readonly address: string; readonly port: number };
  readonly proxyAddress?: string;
  /** Envoy's generated x-request-id; random by default. */
  readonly requestId?: string;
  readonly traceparent?: string;
  readonly now?: Date;
}

const DEFAULT_CLIENT = { address: '172.20.0.10', port: 41234 } as const;

/** Builds the CheckRequest Envoy sends for `route` (a route object or its name). */
export function buildCheckRequest(shape: EnvoyShape, route: EnvoyRoute | string, options: CheckRequestOptions): EnvoyCheckRequest {
  const r = typeof route === 'string' ? shape.routes.find((x) => x.name === route) : route;
  if (!r) throw new Error(`no route named ${String(route)} in ${shape.configPath}`);
  if (r.extAuthzDisabled) throw new Error(`route ${r.name} disables ext_authz: Envoy sends no CheckRequest for it`);
  const clientCert = shape.downstreamMtls ? options.clientCertPem : undefined;
  if (shape.downstreamMtls && clientCert === undefined) throw new Error(`${shape.configPath} requires a client certificate`);

  const client = options.clientAddress ?? DEFAULT_CLIENT;
  const method = options.method ?? (r.match.grpc ? 'POST' : 'GET');
  const path = options.path ?? r.samplePath;
  const authority = options.authority ?? `envoy:${shape.listenerPort}`;
  const now = options.now ?? new Date();

  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = v;
  // Sent by grpc-js on every call.
  if (r.match.grpc) {
    headers['content-type'] ??= 'application/grpc';
    headers['te'] ??= 'trailers';
    headers['user-agent'] ??= 'grpc-node-js/1.14.0';
    headers['grpc-accept-encoding'] ??= 'identity,deflate,gzip';
    headers['accept-encoding'] ??= 'identity';
  }
  if (options.authorization !== undefined) headers['authorization'] = options.authorization;
  if (options.traceparent !== undefined) headers['traceparent'] = options.traceparent;
  headers[':authority'] = authority;
  headers[':path'] = path;
  headers[':method'] = method;
  headers[':scheme'] = 'https';

  // What the HTTP connection manager does before any filter runs.
  const clientXfcc = headers['x-forwarded-client-cert'];
  delete headers['x-forwarded-client-cert'];
  const xfcc = xfccHeader(shape.xfcc, clientXfcc, clientCert, options.proxyCertPem);
  if (xfcc !== undefined) headers['x-forwarded-client-cert'] = xfcc;
  if (shape.useRemoteAddress) {
    headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']},${client.address}` : client.address;
    headers['x-forwarded-proto'] = 'https';
    headers['x-request-id'] = options.requestId ?? randomUUID(); // edge: the caller's is replaced
  } else {
    headers['x-request-id'] ??= options.requestId ?? randomUUID();
  }

  const proxyPrincipal = envoyPrincipal(options.proxyCertPem);
  return {
    attributes: {
      source: {
        address: { socket_address: { address: client.address, port_value: client.port } },
        principal: clientCert !== undefined ? envoyPrincipal(clientCert) : '',
        service: '',
        certificate: clientCert !== undefined && shape.extAuthz.includePeerCertificate ? envoyUrlEncodePem(canonicalPem(clientCert)) : '',
      },
      destination: {
        address: { socket_address: { address: options.proxyAddress ?? '172.20.0.2', port_value: shape.listenerPort } },
        principal: shape.downstreamMtls ? proxyPrincipal : '',
        service: shape.serviceCluster,
        certificate: '',
      },
      request: {
        time: { seconds: String(Math.floor(now.getTime() / 1000)), nanos: (now.getTime() % 1000) * 1_000_000 },
        http: {
          id: BigInt.asUintN(63, BigInt(`0x${randomUUID().replace(/-/g, '').slice(0, 16)}`)).toString(),
          method,
          headers,
          path,
          host: authority,
          scheme: 'https',
          protocol: 'HTTP/2',
        },
      },
      context_extensions: { ...r.contextExtensions },
      metadata_context: {},
    },
  };
}

/** One CheckRequest per route that runs ext_authz, in route order. */
export function buildCheckRequests(
  options: CheckRequestOptions & { readonly configPath?: string },
): { route: EnvoyRoute; request: EnvoyCheckRequest }[] {
  const shape = readEnvoyShape(options.configPath ?? FRONT_PROXY_CONFIG);
  return shape.routes.filter((r) => !r.extAuthzDisabled).map((route) => ({ route, request: buildCheckRequest(shape, route, options) }));
}
