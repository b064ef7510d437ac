import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEMO } from '../../src/dev/emulator.js';
import { echoedOf, headerMap } from '../support/echo.js';
import { requireBinary } from '../support/external-binary.js';
import { grpcCall, http1, http2, type ClientTls } from './clients.js';
import { startStack, type EnvoyStack } from './stack.js';

/**
 * The shipped front proxy (envoy/envoy.yaml, rendered only for ports and certificate paths) in
 * front of entra-authz running deploy/compose/entra-authz.yaml as its own process, reached over
 * mutual TLS as the config says; the Entra emulator; an upstream that echoes what it received.
 */
const envoy = requireBinary('envoy');
const GET_ORDER = '/demo.orders.v1.Orders/GetOrder';
/** How long one step of the certificate rotation may take. */
const WAIT = { timeout: 10_000, interval: 25 };
const IDENTITY_HEADERS = [
  'x-entra-oid',
  'x-entra-tid',
  'x-entra-app-id',
  'x-entra-roles',
  'x-entra-scopes',
  'x-entra-token-type',
  'x-entra-decision-id',
  'x-entra-peer-principal',
  'x-entra-peer-fingerprint',
];
/** Headers other identity layers set, which upstreams may trust (response.stripHeaders). */
const FOREIGN_HEADERS = [
  'x-ms-client-principal',
  'x-ms-client-principal-name',
  'x-ms-token-aad-access-token',
  'x-auth-request-user',
  'x-forwarded-user',
  'x-forwarded-email',
  'x-pomerium-jwt-assertion',
  'remote-user',
  'x-user-id',
  'x-goog-authenticated-user-email',
  'x-amzn-oidc-identity',
  'cf-access-authenticated-user-email',
];
const forgedIdentity = Object.fromEntries([...IDENTITY_HEADERS, ...FOREIGN_HEADERS].map((h) => [h, 'forged']));
const notForwarded = (seen: Readonly<Record<string, string>>): string[] => [...IDENTITY_HEADERS, ...FOREIGN_HEADERS].filter((h) => seen[h] === 'forged');
const entraHeaders = (seen: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(seen).filter(([k]) => k.startsWith('x-entra-')));

describe.skipIf(envoy.skip)('through the real Envoy: front proxy (envoy/envoy.yaml)', () => {
  let s: EnvoyStack;
  let client: ClientTls;
  let writer: string;
  let reader: string;

  beforeAll(async () => {
    s = await startStack({
      envoyBin: envoy.path ?? '',
      file: 'envoy.yaml',
      // One anonymous route, to show stripping on allows without a token too.
      authz: (config) => {
        const rules = config['rules'] as unknown[];
        rules.unshift({ name: 'list-anonymous', match: { paths: [{ grpc: 'demo.orders.v1.Orders/ListOrders' }] }, allowAnonymous: true });
      },
    });
    client = s.tlsAs('demo-client');
    writer = await s.emulator.issueToken({ appId: DEMO.clients.writer.clientId });
    reader = await s.emulator.issueToken({ appId: DEMO.clients.reader.clientId });
  }, 60_000);
  afterAll(async () => s?.close());

  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const grpcPost = (token?: string, extra: Record<string, string> = {}): Record<string, string> => ({
    'content-type': 'application/grpc',
    te: 'trailers',
    ...(token ? bearer(token) : {}),
    ...extra,
  });

  describe('allowed requests', () => {
    it('passes a gRPC call and the upstream sees exactly the identity headers entra-authz set, none the client sent', async () => {
      const answer = await grpcCall(s.port, client, 'GetOrder', { ...bearer(writer), ...forgedIdentity });
      if (!answer.ok) throw new Error(`not allowed: gRPC ${answer.code} ${answer.details}`);
      const seen = entraHeaders(answer.upstream);
      expect(seen).toEqual({
        'x-entra-oid': s.emulator.oidFor(DEMO.clients.writer.clientId),
        'x-entra-tid': DEMO.tenantId,
        'x-entra-app-id': DEMO.clients.writer.clientId,
        'x-entra-roles': 'Orders.Read,Orders.Write',
        'x-entra-token-type': 'app',
        'x-entra-decision-id': expect.stringMatching(/^[0-9a-f-]{36}$/),
        'x-entra-peer-principal': s.pki.spiffeId('demo-client'),
        'x-entra-peer-fingerprint': s.pki.leaves['demo-client'].hashHex,
      });
      // An app token has no scopes: the client's forged copy is gone, not passed through.
      expect(seen['x-entra-scopes']).toBeUndefined();
      expect(notForwarded(answer.upstream)).toEqual([]);
    });

    it('removes client-sent identity headers, ours and other identity layers\', on an anonymous allow too', async () => {
      const answer = await grpcCall(s.port, client, 'ListOrders', forgedIdentity);
      if (!answer.ok) throw new Error(`not allowed: gRPC ${answer.code} ${answer.details}`);
      expect(notForwarded(answer.upstream)).toEqual([]);
      // An anonymous allow carries only its decision id.
      expect(Object.keys(entraHeaders(answer.upstream))).toEqual(['x-entra-decision-id']);
    });

    it.each([
      ['HTTP/1.1', http1],
      ['HTTP/2', http2],
    ] as const)('passes an %s request with the same identity headers', async (_name, send) => {
      const answer = await send(s.port, client, { method: 'POST', path: GET_ORDER, headers: grpcPost(writer, forgedIdentity) });
      expect(answer.status).toBe(200);
      const seen = entraHeaders(headerMap(echoedOf(answer.body)));
      expect(seen['x-entra-oid']).toBe(s.emulator.oidFor(DEMO.clients.writer.clientId));
      expect(Object.keys(seen).sort()).toEqual(IDENTITY_HEADERS.filter((h) => h !== 'x-entra-scopes').sort());
      expect(notForwarded(headerMap(echoedOf(answer.body)))).toEqual([]);
    });

    it('does not send cookies or other headers outside allowed_headers to entra-authz, but the upstream still gets them', async () => {
      const answer = await grpcCall(s.port, client, 'GetOrder', { ...bearer(writer), cookie: 'session=secret-cookie', 'x-private': 'p' });
      if (!answer.ok) throw new Error(`not allowed: gRPC ${answer.code} ${answer.details}`);
      expect(answer.upstream['cookie']).toBe('session=secret-cookie');
      // The audit record lists what entra-authz saw; the cookie value is in no log line of it.
      expect(s.authz.output()).not.toContain('secret-cookie');
    });
  });

  describe('denied requests', () => {
    it('answers a gRPC call without a token with UNAUTHENTICATED, the challenge and the decision id', async () => {
      const answer = await grpcCall(s.port, client, 'GetOrder');
      expect(answer).toMatchObject({ ok: false, code: 16 });
      if (answer.ok) return;
      expect(JSON.parse(answer.details)).toMatchObject({ error: 'token_missing', decision_id: answer.metadata['x-entra-decision-id'] });
      expect(answer.metadata['www-authenticate']).toMatch(/^Bearer realm="entra-authz", authorization_uri="http:\/\/127\.0\.0\.1:\d+\/c0ffee00-/);
    });

    it('answers a gRPC call lacking the role with PERMISSION_DENIED and error="insufficient_scope"', async () => {
      const answer = await grpcCall(s.port, client, 'CreateOrder', bearer(reader));
      expect(answer).toMatchObject({ ok: false, code: 7 });
      if (answer.ok) return;
      expect(JSON.parse(answer.details)).toMatchObject({ error: 'missing_role' });
      expect(answer.metadata['www-authenticate']).toContain('error="insufficient_scope"');
      expect(answer.metadata['x-entra-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('answers a gRPC request over HTTP/1.1 with HTTP 200 and grpc-status 16 (Envoy maps the 401 for gRPC callers)', async () => {
      const answer = await http1(s.port, client, { method: 'POST', path: GET_ORDER, headers: grpcPost() });
      expect(answer.status).toBe(200);
      expect(answer.headers['grpc-status']).toBe('16');
      expect(JSON.parse(answer.headers['grpc-message'] ?? '{}')).toMatchObject({ error: 'token_missing' });
      expect(answer.headers['www-authenticate']).toMatch(/^Bearer /);
    });

    it.each([
      ['HTTP/1.1', http1],
      ['HTTP/2', http2],
    ] as const)('answers a plain %s request on the policy-less catch-all with 403, WWW-Authenticate, the JSON body and the decision id header', async (_name, send) => {
      const forbidden = await send(s.port, client, { path: '/anything', headers: bearer(writer) });
      expect(forbidden.status).toBe(403);
      expect(forbidden.headers['www-authenticate']).toContain('error="insufficient_scope"');
      expect(JSON.parse(forbidden.body)).toMatchObject({ error: 'no_matching_rule', decision_id: forbidden.headers['x-entra-decision-id'] });
    });
  });

  describe('routes pick the rules', () => {
    it('lets the reader read but not create: context_extensions.policy selects orders-read or orders-write', async () => {
      expect(await grpcCall(s.port, client, 'GetOrder', bearer(reader))).toMatchObject({ ok: true });
      expect(await grpcCall(s.port, client, 'CreateOrder', bearer(reader))).toMatchObject({ ok: false, code: 7 });
      expect(await grpcCall(s.port, client, 'CreateOrder', bearer(writer))).toMatchObject({ ok: true });
    });

    it('answers the health route without a token and without asking entra-authz', async () => {
      const stat = 'http.ingress.ext_authz.entra.';
      const before = (await s.envoy.stat(`${stat}ok`)) + (await s.envoy.stat(`${stat}denied`)) + (await s.envoy.stat(`${stat}error`));
      const answer = await http1(s.port, client, { path: '/healthz' });
      expect(answer).toMatchObject({ status: 200, body: 'ok\n' });
      const after = (await s.envoy.stat(`${stat}ok`)) + (await s.envoy.stat(`${stat}denied`)) + (await s.envoy.stat(`${stat}error`));
      expect(after).toBe(before);
    });
  });

  describe('downstream mutual TLS', () => {
    it('denies a client whose SPIFFE ID (Envoy\'s source.principal) is outside the rule\'s pattern', async () => {
      // Envoy's own certificate is from the trust domain, so the listener accepts it; the rule wants ns/demo.
      const answer = await grpcCall(s.port, s.tlsAs('envoy'), 'GetOrder', bearer(writer));
      expect(answer).toMatchObject({ ok: false, code: 7 });
      if (!answer.ok) expect(JSON.parse(answer.details)).toMatchObject({ error: 'peer_not_allowed' });
    });

    it('accepts a certificate-bound token with its certificate and refuses it with another', async () => {
      const bound = await s.emulator.issueToken({
        appId: DEMO.clients.writer.clientId,
        claims: { cnf: { 'x5t#S256': s.pki.leaves['demo-client'].thumbprint } },
      });
      expect(await grpcCall(s.port, client, 'GetOrder', bearer(bound))).toMatchObject({ ok: true });
      // orders is in ns/demo too: the only thing wrong is the binding.
      const other = await grpcCall(s.port, s.tlsAs('orders'), 'GetOrder', bearer(bound));
      expect(other).toMatchObject({ ok: false, code: 16 });
      if (!other.ok) expect(JSON.parse(other.details)).toMatchObject({ error: 'token_binding_mismatch' });
    });

    it('refuses a TLS client without a certificate before any HTTP', async () => {
      const refused = http1(s.port, { ca: client.ca, cert: '', key: '' } as ClientTls, { path: '/healthz' });
      await expect(refused).rejects.toThrow();
    });
  });

  describe('token size', () => {
    const padded = async (headerBytes: number): Promise<string> => {
      const base = await s.emulator.issueToken({ appId: DEMO.clients.writer.clientId, claims: { pad: '' } });
      const padLength = Math.ceil(((headerBytes - 'Bearer '.length - base.length) * 3) / 4);
      return s.emulator.issueToken({ appId: DEMO.clients.writer.clientId, claims: { pad: 'x'.repeat(Math.max(0, padLength)) } });
    };

    it('passes a token just under Envoy\'s default 60 KiB header limit and entra-authz\'s 64 KiB token limit', async () => {
      const token = await padded(58 * 1024);
      expect(token.length).toBeGreaterThan(57 * 1024);
      expect(await grpcCall(s.port, client, 'GetOrder', bearer(token))).toMatchObject({ ok: true });
    });

    it('stops a token over 60 KiB at Envoy, before entra-authz: 431 over HTTP/1.1, a stream reset over HTTP/2', async () => {
      const token = await padded(61 * 1024);
      const checks = (): Promise<number[]> => Promise.all(['ok', 'denied', 'error'].map((k) => s.envoy.stat(`http.ingress.ext_authz.entra.${k}`)));
      const before = await checks();
      const h1 = await http1(s.port, client, { path: GET_ORDER, method: 'POST', headers: grpcPost(token) });
      expect(h1.status).toBe(431);
      await expect(http2(s.port, client, { path: GET_ORDER, method: 'POST', headers: grpcPost(token) })).rejects.toThrow(/NGHTTP2_INTERNAL_ERROR/);
      expect(await checks()).toEqual(before);
    });
  });

  describe('Envoy → entra-authz over mutual TLS', () => {
    it('keeps answering while entra-authz rotates its certificate, and serves the new one afterwards', async () => {
      let failures = 0;
      let done = 0;
      let rotating = true;
      const load = (async () => {
        while (rotating) {
          const answers = await Promise.all(Array.from({ length: 4 }, () => grpcCall(s.port, client, 'GetOrder', bearer(writer))));
          failures += answers.filter((a) => !a.ok).length;
          done += answers.length;
        }
      })();
      await vi.waitFor(() => expect(done).toBeGreaterThanOrEqual(8), WAIT);
      const fresh = await s.pki.reissue('entra-authz');
      s.authz.signal('SIGHUP');
      await vi.waitFor(() => expect(s.authz.output()).toContain('TLS material reloaded'), WAIT);
      // New connections (Envoy's after a reconnect, or anyone's) get the new certificate.
      expect(await servedFingerprint(s.authz.port, s.tlsAs('envoy'))).toBe(fresh.hashHex);
      const atReload = done;
      await vi.waitFor(() => expect(done).toBeGreaterThanOrEqual(atReload + 8), WAIT);
      rotating = false;
      await load;
      expect(failures).toBe(0);
      expect(await grpcCall(s.port, client, 'GetOrder', bearer(writer))).toMatchObject({ ok: true });
    });
  });
});

/** The SHA-256 (hex) of the certificate a TLS server presents, seen as a client would. */
function servedFingerprint(port: number, tls: ClientTls): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...tls, servername: 'entra-authz', ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      const fp = socket.getPeerCertificate().fingerprint256.replace(/:/g, '').toLowerCase();
      socket.destroy();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}
