import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import {
  credentials,
  loadPackageDefinition,
  makeGenericClientConstructor,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig, validateConfig } from '../../src/config/load.js';
import type { Config, Rule } from '../../src/config/schema.js';
import { DEMO, startEntraEmulator, type EmulatorClient, type EntraEmulator } from '../../src/dev/emulator.js';
import { startApp, type RunningApp } from '../../src/runtime/app.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { loadAuthorizationService, type AuthorizationClient } from '../../src/server/protos.js';
import { allowance, denial, type CheckResponse, type CheckResult } from '../support/harness.js';
import {
  buildCheckRequest,
  envoyPrincipal,
  FRONT_PROXY_CONFIG,
  readEnvoyShape,
  SIDECAR_CONFIG,
  type EnvoyCheckRequest,
  type EnvoyRoute,
  type EnvoyShape,
} from './envoy-shape.js';
import { arr, obj, repoPath, runGenCerts, type Obj } from './helpers.js';
import { sharedKeyPairs } from '../fixtures/keys.js';

/**
 * Replays CheckRequests shaped exactly as the envoy/ configs make Envoy send them against the real
 * server running the compose stack's configuration (deploy/compose/entra-authz.yaml).
 *
 * Of that configuration only what cannot run on loopback is replaced: the Entra authority (the
 * emulator), the listen address, certificate paths (the same file names, from gen-certs.sh) and the
 * admin port. Rules and response settings are used exactly as shipped. The server is reached the
 * way Envoy's `entra_authz` cluster reaches it: over mutual TLS with Envoy's client certificate,
 * the cluster's SNI and its pinned server SPIFFE ID when the cluster uses TLS (front proxy), over
 * plain HTTP/2 when it does not (sidecar, which documents running entra-authz without server.tls).
 * Tokens come from real client-credentials requests to the emulator.
 */

const COMPOSE_CONFIG = 'deploy/compose/entra-authz.yaml';
const EXT_AUTHZ_METADATA = /%DYNAMIC_METADATA\(envoy\.filters\.http\.ext_authz:([A-Za-z0-9_]+)\)%/;
/** A forged element a client could send: a demo identity vouched for by the front proxy's URI. */
const FORGED_XFCC =
  'By=spiffe://entra-authz.demo/ns/edge/sa/envoy;Hash=0000000000000000000000000000000000000000000000000000000000000000;' +
  'URI=spiffe://entra-authz.demo/ns/demo/sa/demo-client;DNS=demo-client';

// --- what the Envoy bootstrap says beyond the CheckRequest shape ------------------------------

interface AuthzCluster {
  readonly port: number;
  /** Absent when Envoy reaches entra-authz over plain HTTP/2 (no transport socket). */
  readonly tls?: {
    readonly sni: string;
    readonly certificateFile: string;
    readonly keyFile: string;
    readonly caFile: string;
    /** `match_typed_subject_alt_names` URI exact matchers: the server identity Envoy pins. */
    readonly uriSans: readonly string[];
  };
}

interface EnvoyLayout {
  readonly shape: EnvoyShape;
  /** The certificate the downstream listener presents (XFCC `By`, `destination.principal`). */
  readonly listenerCertificateFile: string;
  /** URI SAN prefixes the downstream listener accepts from clients. */
  readonly clientUriPrefixes: readonly string[];
  readonly authz: AuthzCluster;
  /** Dynamic metadata keys of the ext_authz filter the access log reads. */
  readonly accessLogKeys: readonly string[];
}

function readLayout(configPath: string): EnvoyLayout {
  const shape = readEnvoyShape(configPath);
  const doc = obj(parse(readFileSync(configPath, 'utf8')));
  const resources = obj(doc['static_resources']);
  const listener = arr(resources['listeners']).map(obj).find((l) => l['name'] === shape.listenerName);
  const chain = obj(arr(listener?.['filter_chains'])[0]);
  const downstream = obj(obj(obj(chain['transport_socket'])['typed_config'])['common_tls_context']);
  const listenerCertificateFile = String(obj(obj(arr(downstream['tls_certificates'])[0])['certificate_chain'])['filename']);
  const clientUriPrefixes = arr(obj(downstream['validation_context'])['match_typed_subject_alt_names'])
    .map(obj)
    .filter((m) => m['san_type'] === 'URI')
    .map((m) => String(obj(m['matcher'])['prefix']));

  const cluster = arr(resources['clusters']).map(obj).find((c) => c['name'] === shape.extAuthz.cluster);
  if (!cluster) throw new Error(`${configPath}: no cluster ${String(shape.extAuthz.cluster)}`);
  const endpoint = obj(obj(obj(obj(arr(obj(arr(obj(cluster['load_assignment'])['endpoints'])[0])['lb_endpoints'])[0])['endpoint'])['address'])['socket_address']);
  const upstream = obj(obj(cluster['transport_socket'])['typed_config']);
  const common = obj(upstream['common_tls_context']);
  const identity = obj(arr(common['tls_certificates'])[0]);
  const validation = obj(common['validation_context']);
  const authz: AuthzCluster = {
    port: Number(endpoint['port_value']),
    ...(Object.keys(upstream).length > 0
      ? {
          tls: {
            sni: String(upstream['sni']),
            certificateFile: String(obj(identity['certificate_chain'])['filename']),
            keyFile: String(obj(identity['private_key'])['filename']),
            caFile: String(obj(validation['trusted_ca'])['filename']),
            uriSans: arr(validation['match_typed_subject_alt_names'])
              .map(obj)
              .filter((m) => m['san_type'] === 'URI')
              .map((m) => String(obj(m['matcher'])['exact'])),
          },
        }
      : {}),
  };

  const keys = new Set<string>();
  const scan = (v: unknown): void => {
    if (typeof v === 'string') {
      const m = EXT_AUTHZ_METADATA.exec(v);
      if (m) keys.add(m[1] as string);
    } else if (Array.isArray(v)) v.forEach(scan);
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(scan);
  };
  scan(doc);
  return { shape, listenerCertificateFile, clientUriPrefixes, authz, accessLogKeys: [...keys].sort() };
}

// --- the compose configuration, moved to loopback ----------------------------------------------

const shippedText = readFileSync(repoPath(COMPOSE_CONFIG), 'utf8');
const shipped: Config = parseConfig(shippedText, COMPOSE_CONFIG, { env: {} });

/** `/certs/envoy.crt` → `<generated dir>/envoy.crt` (compose mounts gen-certs.sh's output at /certs). */
function generated(certDir: string, path: string): string {
  const local = join(certDir, basename(path));
  if (!existsSync(local)) throw new Error(`${path}: gen-certs.sh makes no ${basename(path)}`);
  return local;
}

function loopbackConfig(layout: EnvoyLayout, certDir: string, authority: string): Config {
  const raw = obj(parse(shippedText)) as Obj & { server: Obj; entra: Obj };
  const server = raw.server;
  // Envoy's cluster dials the port the shipped config listens on; only the address changes here.
  expect(Number(String(server['listen']).split(':').at(-1))).toBe(layout.authz.port);
  server['listen'] = '127.0.0.1:0';
  if (layout.authz.tls) {
    const tls = obj(server['tls']);
    expect(tls, `${COMPOSE_CONFIG}: Envoy's ${layout.shape.extAuthz.cluster} cluster speaks TLS`).not.toEqual({});
    for (const key of ['certFile', 'keyFile', 'caFile']) if (typeof tls[key] === 'string') tls[key] = generated(certDir, tls[key]);
  } else {
    // Plain HTTP/2 on loopback: the layout runs entra-authz without server.tls (envoy/sidecar.yaml).
    delete server['tls'];
  }
  const peer = obj(raw['peer']);
  if (typeof peer['caBundleFile'] === 'string') peer['caBundleFile'] = generated(certDir, peer['caBundleFile']);
  raw.entra['authority'] = authority;
  if (raw['telemetry'] !== undefined) {
    const telemetry = obj(raw['telemetry']);
    telemetry['admin'] = { ...obj(telemetry['admin']), listen: '127.0.0.1:0' };
    raw['telemetry'] = telemetry;
  }
  const config = validateConfig(raw, `${COMPOSE_CONFIG} on loopback`);
  expect(config.rules).toEqual(shipped.rules);
  expect(config.response).toEqual(shipped.response);
  expect(config.dryRun).toBe(shipped.dryRun);
  return config;
}

// --- what the shipped rules say a route needs ----------------------------------------------------

/** The first shipped rule selected by a route's context extensions (the rules match on nothing else). */
function ruleFor(route: EnvoyRoute): Rule | undefined {
  return shipped.rules.find((rule) => {
    const { contextExtensions = {}, ...other } = rule.match;
    if (Object.values(other).some((v) => v !== undefined)) throw new Error(`rule ${rule.name} matches on more than context extensions: extend replay.test.ts`);
    return Object.entries(contextExtensions).every(([k, v]) => route.contextExtensions[k] === v);
  });
}

/** Whether a client's app roles meet a rule's role requirement (the replayed demo client meets its peer requirement). */
function rolesMeet(rule: Rule, client: EmulatorClient): boolean {
  const req = rule.require;
  if (req === undefined) return true;
  const { roles, peer: _peer, ...other } = req;
  if (Object.values(other).some((v) => v !== undefined)) throw new Error(`rule ${rule.name} requires more than roles and a peer: extend replay.test.ts`);
  const held = client.roles[DEMO.api.appId] ?? [];
  return (roles?.anyOf?.some((r) => held.includes(r)) ?? true) && (roles?.allOf?.every((r) => held.includes(r)) ?? true);
}

// --- gRPC, as Envoy's cluster does it ------------------------------------------------------------

function metadataOf(result: CheckResult): Record<string, unknown> {
  const fields = result.kind === 'response' ? (result.response.dynamic_metadata?.fields ?? {}) : {};
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.stringValue ?? v.listValue?.values?.map((x) => x.stringValue) ?? null]));
}

type HealthWatch = (req: { service: string }) => ClientReadableStream<{ status?: string }>;

function healthClient(address: string, creds: ChannelCredentials, options: ChannelOptions): { Watch: HealthWatch; close(): void } {
  const require = createRequire(import.meta.url);
  const def = loadSync(require.resolve('grpc-health-check/proto/health/v1/health.proto'), { keepCase: true, enums: String });
  const pkg = loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: new (a: string, c: ChannelCredentials, o: ChannelOptions) => { Watch: HealthWatch; close(): void } } } };
  };
  return new pkg.grpc.health.v1.Health(address, creds, options);
}

/** Resolves when grpc.health.v1 reports SERVING for the whole server (Envoy's health check target). */
function servingReported(address: string, creds: ChannelCredentials, options: ChannelOptions): Promise<void> {
  const health = healthClient(address, creds, options);
  return new Promise<void>((resolve, reject) => {
    const stream = health.Watch({ service: '' });
    let done = false;
    stream.on('data', (m: { status?: string }) => {
      if (m.status !== 'SERVING' || done) return;
      done = true;
      stream.cancel();
      resolve();
    });
    stream.on('error', (err: ServiceError) => {
      if (!done) reject(err);
    });
  }).finally(() => health.close());
}

interface Caller {
  readonly client: AuthorizationClient;
  check(request: unknown): Promise<CheckResult>;
}

function caller(address: string, creds: ChannelCredentials, options: ChannelOptions): Caller {
  const Client = makeGenericClientConstructor(loadAuthorizationService(), 'Authorization');
  const client = new Client(address, creds, options) as unknown as AuthorizationClient;
  return {
    client,
    check: (request) =>
      new Promise((resolve) => {
        client.Check(request, (err, res) => {
          if (err) resolve({ kind: 'error', code: err.code, details: err.details });
          else resolve({ kind: 'response', response: (res ?? {}) as CheckResponse });
        });
      }),
  };
}

/**
 * Channel credentials of Envoy's authz cluster: its client certificate, its trusted CA, its SNI, and
 * — instead of host-name verification, which Envoy does not do when SAN matchers are set — the
 * pinned URI SAN of the server.
 */
function clusterCredentials(tls: NonNullable<AuthzCluster['tls']>, certDir: string, identity?: { cert: string; key: string }): { creds: ChannelCredentials; options: ChannelOptions } {
  const creds = credentials.createSsl(
    readFileSync(generated(certDir, tls.caFile)),
    readFileSync(identity?.key ?? generated(certDir, tls.keyFile)),
    readFileSync(identity?.cert ?? generated(certDir, tls.certificateFile)),
    {
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const uris = (cert.subjectaltname ?? '').split(/,\s*/).filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
        return uris.some((u) => tls.uriSans.includes(u)) ? undefined : new Error(`server URI SANs ${uris.join(' ')} match none of ${tls.uriSans.join(' ')}`);
      },
    },
  );
  return { creds, options: { 'grpc.ssl_target_name_override': tls.sni } };
}

// --- fixtures shared by both layouts ------------------------------------------------------------

let certDir: string;
let emulator: EntraEmulator;
const tokens = new Map<string, string>();
const { writer, reader } = DEMO.clients;
const cert = (name: string): string => readFileSync(join(certDir, name), 'utf8');

/** A client-credentials request to the token endpoint the emulator's OpenID metadata names. */
async function clientCredentialsToken(client: EmulatorClient): Promise<string> {
  const tenant = shipped.entra.tenants[0] as string;
  const meta = (await (await fetch(`${emulator.url}/${tenant}/v2.0/.well-known/openid-configuration`)).json()) as { token_endpoint: string };
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: client.clientId,
      client_secret: client.clientSecret,
      scope: `${DEMO.api.identifierUri}/.default`,
    }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  const body = (await res.json()) as { token_type: string; access_token: string };
  expect(body.token_type).toBe('Bearer');
  return body.access_token;
}

beforeAll(async () => {
  certDir = runGenCerts().dir;
  emulator = await startEntraEmulator({ keyPairs: sharedKeyPairs() });
  // The compose config is written for the emulator's demo identities.
  expect(shipped.entra.tenants).toEqual([DEMO.tenantId]);
  expect(shipped.entra.audiences).toEqual(expect.arrayContaining([DEMO.api.identifierUri, DEMO.api.appId]));
  for (const c of [writer, reader]) tokens.set(c.clientId, await clientCredentialsToken(c));
});

afterAll(async () => {
  await emulator?.close();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

// --- the replay ---------------------------------------------------------------------------------

const LAYOUTS: [string, string][] = [
  ['the front proxy (envoy/envoy.yaml)', FRONT_PROXY_CONFIG],
  ['the sidecar (envoy/sidecar.yaml)', SIDECAR_CONFIG],
];

describe.each(LAYOUTS)('replays CheckRequests shaped exactly as %s produces them against the real server', (_title, configPath) => {
  const layout = readLayout(configPath);
  const { shape } = layout;
  const checked = shape.routes.filter((r) => !r.extAuthzDisabled);
  const withPolicy = checked.filter((r) => Object.keys(r.contextExtensions).length > 0);
  const withoutPolicy = checked.filter((r) => Object.keys(r.contextExtensions).length === 0);

  let app: RunningApp;
  let config: Config;
  let envoy: Caller;
  let proxyCertPem: string;
  let clientCertPem: string;

  /** What Envoy sends for `route` on a connection from the demo client (or `clientCert`). */
  const request = (route: EnvoyRoute, opts: { token?: string; clientCert?: string; headers?: Record<string, string> } = {}): EnvoyCheckRequest =>
    buildCheckRequest(shape, route, {
      clientCertPem: opts.clientCert ?? clientCertPem,
      proxyCertPem,
      ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.headers ? { headers: opts.headers } : {}),
    });
  const tokenOf = (c: EmulatorClient): string => tokens.get(c.clientId) as string;

  beforeAll(async () => {
    proxyCertPem = readFileSync(generated(certDir, layout.listenerCertificateFile), 'utf8');
    clientCertPem = cert('demo-client.crt');
    config = loopbackConfig(layout, certDir, emulator.url);
    app = await startApp(config, { log: silentLogger() });
    const { creds, options }: { creds: ChannelCredentials; options: ChannelOptions } = layout.authz.tls
      ? clusterCredentials(layout.authz.tls, certDir)
      : { creds: credentials.createInsecure(), options: {} };
    // Envoy's gRPC client sends the cluster name as :authority (EnvoyGrpc.authority defaults to it).
    options['grpc.default_authority'] = shape.extAuthz.cluster;
    expect(config.server.tls !== undefined).toBe(layout.authz.tls !== undefined);
    await servingReported(app.address, creds, options);
    envoy = caller(app.address, creds, options);
  });

  afterAll(async () => {
    envoy?.client.close();
    await app?.close(500);
  });

  it('has routes to replay: some with a policy, the health route without ext_authz', () => {
    expect(withPolicy.length).toBeGreaterThan(0);
    expect(shape.routes.some((r) => r.extAuthzDisabled)).toBe(true);
    expect(shape.xfcc.mode).toBe('SANITIZE_SET');
    expect(shape.extAuthz.includePeerCertificate).toBe(true);
    // The callers replayed here are ones Envoy's downstream TLS accepts.
    for (const pem of [cert('demo-client.crt'), cert('entra-authz.crt')]) {
      expect(layout.clientUriPrefixes.some((p) => envoyPrincipal(pem).startsWith(p))).toBe(true);
    }
  });

  it('selects a shipped rule with every context extension value a route sends: none falls through to no_matching_rule', async () => {
    for (const route of withPolicy) {
      const rule = ruleFor(route);
      expect(rule, `${route.name} ${JSON.stringify(route.contextExtensions)}`).toBeDefined();
      const m = metadataOf(await envoy.check(request(route, { token: tokenOf(writer) })));
      expect(m['reason'], route.name).not.toBe('no_matching_rule');
      expect(m['rule'], route.name).toBe(rule?.name);
    }
  });

  it('allows the writer on every route with a policy and returns the identity the access log reads', async () => {
    const h = config.response.identityHeaders;
    const principal = envoyPrincipal(clientCertPem);
    expect(principal).toBe('spiffe://entra-authz.demo/ns/demo/sa/demo-client');
    for (const route of withPolicy) {
      const req = request(route, { token: tokenOf(writer) });
      expect(req.attributes.source.principal).toBe(principal);
      const a = allowance(await envoy.check(req));
      expect(a.metadata, route.name).toMatchObject({
        reason: 'allowed',
        rule: ruleFor(route)?.name,
        decision_id: a.headers[h.decisionId],
        oid: emulator.oidFor(writer.clientId),
        tid: DEMO.tenantId,
        app_id: writer.clientId,
        token_type: 'app',
        peer_principal: principal,
      });
      expect(a.headers[h.decisionId], route.name).toMatch(/^[0-9a-f-]{36}$/);
      // Every %DYNAMIC_METADATA(envoy.filters.http.ext_authz:...)% of the access log has a value.
      for (const key of layout.accessLogKeys) expect(a.metadata[key], `${route.name}: ${key}`).toEqual(expect.any(String));
      expect(a.headers).toMatchObject({
        [h.oid]: emulator.oidFor(writer.clientId),
        [h.tid]: DEMO.tenantId,
        [h.appId]: writer.clientId,
        [h.roles]: 'Orders.Read,Orders.Write',
        [h.tokenType]: 'app',
        [h.peerPrincipal]: principal,
      });
      expect(new Set(a.appendActions)).toEqual(new Set(['OVERWRITE_IF_EXISTS_OR_ADD']));
      // No scopes in an app token: a client-sent x-entra-scopes is removed, never forwarded.
      expect(a.remove).toContain(h.scopes);
      if (!config.response.removeTokenHeader) expect(a.remove).not.toContain(config.entra.tokenHeader);
    }
  });

  it('allows the reader where Orders.Read suffices and denies it 403 missing_role on the write route', async () => {
    const deniedRoutes: string[] = [];
    for (const route of withPolicy) {
      const rule = ruleFor(route) as Rule;
      const result = await envoy.check(request(route, { token: tokenOf(reader) }));
      if (rolesMeet(rule, reader)) {
        const a = allowance(result);
        expect(a.metadata, route.name).toMatchObject({ rule: rule.name, app_id: reader.clientId, peer_principal: envoyPrincipal(clientCertPem) });
        expect(a.headers[config.response.identityHeaders.roles]).toBe('Orders.Read');
      } else {
        deniedRoutes.push(route.name);
        const d = denial(result);
        expect(d, route.name).toMatchObject({ reason: 'missing_role', grpcCode: 7, httpStatus: 'Forbidden' });
        expect(d.headers['www-authenticate']).toContain('error="insufficient_scope"');
        expect(metadataOf(result)).toMatchObject({
          decision_id: d.headers[config.response.identityHeaders.decisionId],
          reason: 'missing_role',
          rule: rule.name,
          app_id: reader.clientId,
          oid: emulator.oidFor(reader.clientId),
        });
      }
    }
    expect(deniedRoutes).toEqual(withPolicy.filter((r) => r.contextExtensions['policy'] === 'orders-write').map((r) => r.name));
    expect(deniedRoutes).toContain('orders-create');
  });

  it('denies 401 with a Bearer challenge on every route with a policy when no token is sent', async () => {
    for (const route of withPolicy) {
      const result = await envoy.check(request(route));
      const d = denial(result);
      expect(d, route.name).toMatchObject({ reason: 'token_missing', grpcCode: 16, httpStatus: 'Unauthorized' });
      expect(d.headers['www-authenticate']).toBe(
        `Bearer realm="${config.response.realm}", authorization_uri="${emulator.url}/${DEMO.tenantId}/oauth2/authorize"`,
      );
      expect(metadataOf(result)).toMatchObject({ decision_id: d.headers[config.response.identityHeaders.decisionId], reason: 'token_missing', rule: ruleFor(route)?.name });
    }
  });

  it('denies the catch-all route, which names no policy, no_matching_rule even for the writer', async () => {
    expect(withoutPolicy.map((r) => r.name)).toEqual(['not-found']);
    for (const route of withoutPolicy) {
      expect(ruleFor(route)).toBeUndefined();
      for (const token of [tokenOf(writer), undefined]) {
        const d = denial(await envoy.check(request(route, token !== undefined ? { token } : {})));
        expect(d, route.name).toMatchObject({ reason: 'no_matching_rule', httpStatus: 'Forbidden' });
      }
    }
  });

  it('ignores a forged client x-forwarded-client-cert: Envoy replaces it, and the peer is the TLS client', async () => {
    const route = withPolicy.find((r) => r.contextExtensions['policy'] === 'orders-write') as EnvoyRoute;
    const headers = { 'x-forwarded-client-cert': FORGED_XFCC };

    // The demo client, claiming another identity: allowed as itself.
    const forgedByDemo = request(route, { token: tokenOf(writer), headers: { 'x-forwarded-client-cert': 'By=spiffe://entra-authz.demo/ns/edge/sa/envoy;URI=spiffe://entra-authz.demo/ns/admin/sa/root' } });
    const sent = forgedByDemo.attributes.request.http.headers['x-forwarded-client-cert'] ?? '';
    expect(sent).not.toContain('ns/admin');
    expect(sent).toContain(`By=${envoyPrincipal(proxyCertPem)};Hash=`);
    expect(allowance(await envoy.check(forgedByDemo)).metadata).toMatchObject({ peer_principal: envoyPrincipal(clientCertPem), peer_source: 'certificate' });

    // A caller outside ns/demo (valid certificate of the trust domain), claiming the demo client: denied as itself.
    const outsider = cert('entra-authz.crt');
    const forgedByOutsider = request(route, { token: tokenOf(writer), clientCert: outsider, headers });
    expect(forgedByOutsider.attributes.request.http.headers['x-forwarded-client-cert']).not.toContain('demo-client');
    const result = await envoy.check(forgedByOutsider);
    expect(denial(result)).toMatchObject({ reason: 'peer_not_allowed', httpStatus: 'Forbidden' });
    expect(metadataOf(result)).toMatchObject({ peer_principal: envoyPrincipal(outsider) });

    // Even had it reached entra-authz unsanitized, the shipped config does not trust XFCC.
    expect(config.peer.xfcc.trusted).toBe(false);
    forgedByOutsider.attributes.request.http.headers['x-forwarded-client-cert'] = FORGED_XFCC;
    expect(denial(await envoy.check(forgedByOutsider)).reason).toBe('peer_not_allowed');
  });

  if (layout.authz.tls) {
    const tls = layout.authz.tls;
    it('refuses Check calls over TLS from any client certificate but Envoy\'s (allowedClients)', async () => {
      const { creds, options } = clusterCredentials(tls, certDir, { cert: join(certDir, 'demo-client.crt'), key: join(certDir, 'demo-client.key') });
      const other = caller(app.address, creds, options);
      try {
        const result = await other.check(request(withPolicy[0] as EnvoyRoute, { token: tokenOf(writer) }));
        expect(result).toMatchObject({ kind: 'error', code: 7 });
      } finally {
        other.client.close();
      }
    });
  }
});
