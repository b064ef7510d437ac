import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FOREIGN_IDENTITY_HEADERS } from '../../src/core/response.js';
import { EnvoyProtoChecker } from './envoy-proto.js';
import { readEnvoyShape } from './envoy-shape.js';
import { arr, genCertIdentities, listFiles, obj, readYaml, walk, type Obj } from './helpers.js';

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';
const ENVOY_FILES = listFiles('envoy', '.yaml');
let checker: EnvoyProtoChecker;

beforeAll(() => {
  checker = EnvoyProtoChecker.load();
});

const hcmOf = (doc: Obj): Obj => {
  const listener = obj(arr(obj(doc['static_resources'])['listeners'])[0]);
  return obj(obj(obj(arr(obj(arr(listener['filter_chains'])[0])['filters'])[0])['typed_config']));
};
const clustersOf = (doc: Obj): Obj[] => arr(obj(doc['static_resources'])['clusters']).map(obj);
const httpFilter = (doc: Obj, name: string): Obj => obj(obj(arr(hcmOf(doc)['http_filters']).map(obj).find((f) => f['name'] === name))['typed_config']);

describe('Envoy configs against Envoy\'s own protos', () => {
  it('finds the front proxy and the sidecar variant', () => {
    expect(ENVOY_FILES).toEqual(expect.arrayContaining(['envoy.yaml', 'sidecar.yaml']));
  });

  it.each(ENVOY_FILES)('%s parses into a Bootstrap with no unknown field, bad value or unresolved typed_config', (file) => {
    const result = checker.check(BOOTSTRAP, readYaml('envoy', file));
    expect(result.problems).toEqual([]);
    expect(result.encoded?.length).toBeGreaterThan(1000);
    // Every typed_config was resolved by its type URL and checked, not skipped.
    const core = [
      'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
      'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation',
      'envoy.extensions.filters.http.router.v3.Router',
    ];
    // The gRPC front proxy and sidecar also run mTLS, per-route policies, access logs and tracing;
    // http-service.yaml (docs/http-mode.md) is the minimal HTTP-mode front proxy.
    const grpcExtras = [
      'envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
      'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      'envoy.extensions.access_loggers.file.v3.FileAccessLog',
      'envoy.config.trace.v3.OpenTelemetryConfig',
    ];
    expect(result.anyTypes).toEqual(expect.arrayContaining(file === 'http-service.yaml' ? core : [...core, ...grpcExtras]));
    let anys = 0;
    walk(readYaml('envoy', file), (_p, v) => {
      if (obj(v)['@type'] !== undefined) anys++;
    });
    expect(result.anyTypes).toHaveLength(anys);
  });
});

describe('the proto checker refuses what Envoy would refuse', () => {
  const base = (): Obj => readYaml('envoy', 'envoy.yaml');
  const extAuthz = (doc: Obj): Obj => httpFilter(doc, 'envoy.filters.http.ext_authz');
  const cases: [string, (doc: Obj) => void, RegExp][] = [
    ['an unknown top-level field', (d) => (d['static_resource'] = {}), /unknown field "static_resource".*did you mean "static_resources"/],
    ['an unknown field inside a typed_config', (d) => (extAuthz(d)['failure_mode_alow'] = true), /typed_config<ExtAuthz>.*unknown field "failure_mode_alow"/],
    ['an unknown field deep inside a typed_config', (d) => (obj(extAuthz(d)['grpc_service'])['envoy_grpc'] = { cluster: 'x' }), /unknown field "cluster".*EnvoyGrpc/],
    ['a type URL naming no message', (d) => (extAuthz(d)['@type'] = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuth'), /names no known message/],
    ['an Any without @type', (d) => delete extAuthz(d)['@type'], /"@type"/],
    ['a duration not in proto3 JSON form', (d) => (obj(extAuthz(d)['grpc_service'])['timeout'] = '500ms'), /duration like "0.5s"/],
    ['an undefined enum value', (d) => (extAuthz(d)['transport_api_version'] = 'V4'), /"V4" is not a value of envoy.config.core.v3.ApiVersion/],
    ['a number where a bool belongs', (d) => (extAuthz(d)['failure_mode_allow'] = 'false'), /expected true or false/],
    ['an out-of-range port', (d) => (obj(obj(obj(arr(obj(d['static_resources'])['listeners'])[0])['address'])['socket_address'])['port_value'] = 70000), /port_value.*(must be <= 65535|uint32 range)/],
    ['two members of a oneof', (d) => (obj(extAuthz(d)['grpc_service'])['google_grpc'] = { target_uri: 'x:1', stat_prefix: 'x' }), /only one of envoy_grpc, google_grpc/],
    ['a missing required oneof', (d) => delete obj(extAuthz(d)['grpc_service'])['envoy_grpc'], /one of envoy_grpc, google_grpc is required/],
    ['an empty required string', (d) => (obj(obj(extAuthz(d)['grpc_service'])['envoy_grpc'])['cluster_name'] = ''), /"cluster_name" must not be shorter than 1/],
    ['a deprecated field', (d) => (clustersOf(d)[0] as Obj)['http2_protocol_options'] = {}, /http2_protocol_options" of envoy.config.cluster.v3.Cluster is deprecated/],
    ['an unset enum that must be set', (d) => delete obj(arr(obj(obj(obj(obj(clustersOf(d)[0]?.['transport_socket'])['typed_config'])['common_tls_context'])['validation_context'])['match_typed_subject_alt_names'])[0])['san_type'], /"san_type" must be set/],
    ['a list where an object belongs', (d) => (hcmOf(d)['route_config'] = []), /expected an object \(envoy.config.route.v3.RouteConfiguration\)/],
  ];

  it.each(cases)('refuses %s', (_name, mutate, expected) => {
    const doc = base();
    mutate(doc);
    const problems = checker.check(BOOTSTRAP, doc).problems.map((p) => `${p.path}: ${p.message}`).join('\n');
    expect(problems).toMatch(expected);
  });

  it('accepts the proto3 JSON names as well as the proto names', () => {
    const doc = parse('staticResources: { clusters: [{ name: a, connectTimeout: 1s, loadAssignment: { clusterName: a } }] }');
    expect(checker.check(BOOTSTRAP, doc).problems).toEqual([]);
  });

  it('checks TypedStruct contents against the type they name', () => {
    const doc = base();
    const filters = arr(hcmOf(doc)['http_filters']);
    filters.splice(0, 1, {
      name: 'x',
      typed_config: {
        '@type': 'type.googleapis.com/xds.type.v3.TypedStruct',
        type_url: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
        value: { suppress_envoy_headerz: true },
      },
    });
    expect(checker.check(BOOTSTRAP, doc).problems.map((p) => p.message).join()).toMatch(/unknown field "suppress_envoy_headerz"/);
  });
});

describe('the front proxy (envoy/envoy.yaml)', () => {
  const doc = (): Obj => readYaml('envoy', 'envoy.yaml');
  const authzConfig = (): Obj => readYaml('deploy', 'compose', 'entra-authz.yaml');
  const identity = (name: string): string => genCertIdentities().find((i) => i.name === name)?.spiffeId ?? '';

  it('runs ext_authz over gRPC v3, fail-closed with 503, sending the peer certificate, with a sub-second timeout', () => {
    const shape = readEnvoyShape();
    expect(shape.extAuthz).toEqual({
      includePeerCertificate: true,
      failureModeAllow: false,
      statusOnError: 'ServiceUnavailable',
      timeout: '0.5s',
      cluster: 'entra_authz',
      transportApiVersion: 'V3',
    });
  });

  it('skips the check only on the health route and gives every other proxied route a policy entra-authz has a rule for', () => {
    const shape = readEnvoyShape();
    expect(shape.routes.filter((r) => r.extAuthzDisabled).map((r) => r.match.path)).toEqual(['/healthz']);
    const rulePolicies = new Set(
      arr(authzConfig()['rules']).map((r) => String(obj(obj(obj(r)['match'])['contextExtensions'])['policy'])),
    );
    for (const route of shape.routes.filter((r) => r.cluster !== undefined)) {
      expect(route.extAuthzDisabled, route.name).toBe(false);
      expect(rulePolicies.has(route.contextExtensions['policy'] ?? ''), `${route.name} → ${route.contextExtensions['policy']}`).toBe(true);
    }
    // The catch-all is checked too (no policy: entra-authz denies), never proxied.
    const catchAll = shape.routes.at(-1);
    expect(catchAll?.match.prefix).toBe('/');
    expect(catchAll?.cluster).toBeUndefined();
    expect(catchAll?.extAuthzDisabled).toBe(false);
  });

  it('requires client certificates from the trust domain, and sanitizes then sets x-forwarded-client-cert', () => {
    const shape = readEnvoyShape();
    expect(shape.downstreamMtls).toBe(true);
    expect(shape.xfcc).toEqual({ mode: 'SANITIZE_SET', subject: true, cert: true, chain: false, uri: true, dns: true });
    const listener = obj(arr(obj(doc()['static_resources'])['listeners'])[0]);
    const tls = obj(obj(obj(arr(listener['filter_chains'])[0])['transport_socket'])['typed_config']);
    const sans = arr(obj(obj(tls['common_tls_context'])['validation_context'])['match_typed_subject_alt_names']);
    expect(sans).toEqual([{ san_type: 'URI', matcher: { prefix: 'spiffe://entra-authz.demo/' } }]);
    expect(identity('demo-client').startsWith('spiffe://entra-authz.demo/')).toBe(true);
  });

  it('reaches entra-authz over HTTP/2 with mutual TLS, pinning its SPIFFE ID and presenting Envoy\'s', () => {
    const cluster = clustersOf(doc()).find((c) => c['name'] === 'entra_authz') as Obj;
    const opts = obj(obj(cluster['typed_extension_protocol_options'])['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']);
    expect(obj(opts['explicit_http_config'])['http2_protocol_options']).toBeDefined();
    const tls = obj(obj(cluster['transport_socket'])['typed_config']);
    expect(tls['@type']).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
    const common = obj(tls['common_tls_context']);
    expect(arr(common['tls_certificates'])).toHaveLength(1);
    expect(obj(obj(arr(common['tls_certificates'])[0])['certificate_chain'])['filename']).toBe('/certs/envoy.crt');
    expect(arr(obj(common['validation_context'])['match_typed_subject_alt_names'])).toEqual([
      { san_type: 'URI', matcher: { exact: identity('entra-authz') } },
    ]);
    // ... and entra-authz lets exactly that client in.
    expect(obj(obj(authzConfig()['server'])['tls'])['allowedClients']).toEqual([identity('envoy')]);
  });

  it('logs the decision id, reason, rule and subject from ext_authz dynamic metadata', () => {
    const hcm = hcmOf(doc());
    const format = obj(obj(obj(obj(arr(hcm['access_log'])[0])['typed_config'])['log_format'])['json_format']);
    const values = Object.values(format).map(String);
    for (const key of ['decision_id', 'reason', 'rule', 'oid', 'tid', 'app_id', 'token_type', 'peer_principal']) {
      expect(values).toContain(`%DYNAMIC_METADATA(envoy.filters.http.ext_authz:${key})%`);
    }
    expect(values).toEqual(expect.arrayContaining(['%RESPONSE_FLAGS%', '%RESPONSE_CODE_DETAILS%', '%REQ(X-REQUEST-ID)%']));
  });

  it('traces to the OpenTelemetry collector cluster', () => {
    const tracing = obj(hcmOf(doc())['tracing']);
    const provider = obj(tracing['provider']);
    expect(provider['name']).toBe('envoy.tracers.opentelemetry');
    const cluster = obj(obj(obj(provider['typed_config'])['grpc_service'])['envoy_grpc'])['cluster_name'];
    expect(clustersOf(doc()).map((c) => c['name'])).toContain(cluster);
  });
});

describe.each(ENVOY_FILES)('consistency of %s', (file) => {
  const doc = (): Obj => readYaml('envoy', file);

  it('references only clusters it defines', () => {
    const defined = new Set(clustersOf(doc()).map((c) => String(c['name'])));
    const used: string[] = [];
    walk(doc(), (path, v) => {
      if (/(\.route\.cluster|\.envoy_grpc\.cluster_name|\.server_uri\.cluster)$/.test(path) && typeof v === 'string') used.push(v);
    });
    expect(used.length).toBeGreaterThanOrEqual(2);
    for (const c of used) expect(defined, c).toContain(c);
    for (const c of clustersOf(doc())) expect(obj(c['load_assignment'])['cluster_name']).toBe(c['name']);
  });

  it('names only configured HTTP filters in per-route config, and ends the chain with the router', () => {
    const filters = arr(hcmOf(doc())['http_filters']).map((f) => String(obj(f)['name']));
    expect(filters.at(-1)).toBe('envoy.filters.http.router');
    expect(filters.indexOf('envoy.filters.http.header_mutation')).toBeLessThan(filters.indexOf('envoy.filters.http.ext_authz'));
    walk(hcmOf(doc())['route_config'], (path, v) => {
      if (path.endsWith('typed_per_filter_config')) for (const k of Object.keys(obj(v))) expect(filters, path).toContain(k);
    });
  });

  it('strips every identity header entra-authz may set before ext_authz runs', () => {
    const removed = arr(obj(httpFilter(doc(), 'envoy.filters.http.header_mutation')['mutations'])['request_mutations']).map((m) => obj(m)['remove']);
    const headers = Object.values(obj(obj(readYaml('deploy', 'compose', 'entra-authz.yaml')['response'])['identityHeaders']));
    expect(headers.length).toBe(9);
    expect(new Set(removed)).toEqual(new Set(headers));
  });
});

/** The configs that call entra-authz's gRPC Check. */
describe.each(['envoy.yaml', 'sidecar.yaml'])('what %s sends to entra-authz', (file) => {
  const doc = (): Obj => readYaml('envoy', file);

  it('is the token, request id, XFCC, trace context, every identity header it sets or strips, and no other header', () => {
    const patterns = arr(obj(httpFilter(doc(), 'envoy.filters.http.ext_authz')['allowed_headers'])['patterns']).map(obj);
    const allowed = (name: string): boolean =>
      patterns.some((p) => p['exact'] === name || (typeof p['prefix'] === 'string' && name.startsWith(p['prefix'])));
    for (const name of ['authorization', 'x-request-id', 'x-forwarded-client-cert', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid']) {
      expect(allowed(name), name).toBe(true);
    }
    const identity = Object.values(obj(obj(readYaml('deploy', 'compose', 'entra-authz.yaml')['response'])['identityHeaders'])).map(String);
    for (const name of identity) expect(allowed(name), name).toBe(true);
    // entra-authz strips other identity layers' headers by prefix only when it sees them.
    for (const prefix of FOREIGN_IDENTITY_HEADERS.prefixes) expect(allowed(`${prefix}probe`), prefix).toBe(true);
    for (const name of ['cookie', 'x-api-key', 'proxy-authorization']) expect(allowed(name), name).toBe(false);
  });
});
