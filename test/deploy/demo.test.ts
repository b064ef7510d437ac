import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type Client,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoSettings } from '../../demo/demo-values.js';
import { loadOrdersService, startOrdersServer, type Order } from '../../demo/orders.js';
import { runDemo } from '../../demo/scenario.js';
import { DEMO } from '../../src/dev/demo.js';
import { startTokenEndpoint, type TokenEndpoint } from '../client/token-endpoint.js';
import { runGenCerts } from './helpers.js';

/**
 * The compose demo without Docker: the real demo client scenario and the real orders service,
 * with a stand-in for Envoy + entra-authz in between (mTLS listener with the Envoy certificate,
 * bearer check, role check, identity headers forwarded upstream). What it proves is the demo's
 * own wiring: certificates from CERT_DIR, client-credentials tokens attached per call, and the
 * outcomes the walkthrough in docs/deployment.md describes.
 */

type Unary = (req: object, md: Metadata, cb: (err: ServiceError | null, res?: Order) => void) => void;

let certDir: string;
let tokens: TokenEndpoint;
let orders: { server: Server; port: number };
let envoy: Server;
let envoyPort: number;
const peersSeen: string[] = [];

beforeAll(async () => {
  certDir = runGenCerts().dir;
  const read = (f: string): Buffer => readFileSync(join(certDir, f));

  tokens = await startTokenEndpoint(DEMO.tenantId);
  tokens.reply = (req) => {
    const known = [DEMO.clients.reader, DEMO.clients.writer].find(
      (c) => c.clientId === req.form.get('client_id') && c.clientSecret === req.form.get('client_secret'),
    );
    if (!known || req.form.get('scope') !== `${DEMO.api.identifierUri}/.default`) return { status: 401, body: JSON.stringify({ error: 'invalid_client' }) };
    return { status: 200, body: JSON.stringify({ token_type: 'Bearer', expires_in: 3599, access_token: `at-${known.clientId}` }) };
  };

  orders = await startOrdersServer('127.0.0.1:0');
  const Orders = loadOrdersService();
  const upstream = new Orders(`127.0.0.1:${orders.port}`, credentials.createInsecure()) as unknown as Client & Record<string, Unary>;

  // Stand-in for Envoy (mTLS, XFCC) + entra-authz (401 without token, 403 without the role).
  const decide = (method: string, call: ServerUnaryCall<object, Order>, callback: sendUnaryData<Order>): void => {
    const peer = new X509Certificate(call.getAuthContext().sslPeerCertificate?.raw ?? Buffer.alloc(0));
    const peerUri = /URI:([^,]+)/.exec(peer.subjectAltName ?? '')?.[1] ?? '';
    peersSeen.push(peerUri);
    const auth = String(call.metadata.get('authorization')[0] ?? '');
    const clientId = /^Bearer at-(.+)$/.exec(auth)?.[1];
    const client = [DEMO.clients.reader, DEMO.clients.writer].find((c) => c.clientId === clientId);
    if (!client) {
      const md = new Metadata();
      md.set('www-authenticate', 'Bearer realm="entra-authz"');
      return callback({ code: status.UNAUTHENTICATED, details: 'an access token is required', metadata: md });
    }
    const roles = Object.values(client.roles).flat();
    if (method === 'CreateOrder' && !roles.includes('Orders.Write')) {
      const md = new Metadata();
      md.set('x-entra-decision-id', 'dec-403');
      return callback({ code: status.PERMISSION_DENIED, details: 'the token lacks a required app role', metadata: md });
    }
    const md = new Metadata();
    md.set('x-entra-app-id', client.clientId);
    md.set('x-entra-roles', roles.join(','));
    md.set('x-entra-decision-id', `dec-${method}`);
    md.set('x-forwarded-client-cert', `By=spiffe://entra-authz.demo/ns/edge/sa/envoy;URI=${peerUri}`);
    (upstream[method] as Unary).call(upstream, call.request, md, (err, res) => callback(err, res));
  };
  envoy = new Server();
  envoy.addService(Orders.service, {
    GetOrder: (call: ServerUnaryCall<object, Order>, cb: sendUnaryData<Order>) => decide('GetOrder', call, cb),
    ListOrders: (call: ServerUnaryCall<object, Order>, cb: sendUnaryData<Order>) => decide('ListOrders', call, cb),
    CreateOrder: (call: ServerUnaryCall<object, Order>, cb: sendUnaryData<Order>) => decide('CreateOrder', call, cb),
  });
  envoyPort = await new Promise<number>((resolve, reject) =>
    envoy.bindAsync(
      '127.0.0.1:0',
      ServerCredentials.createSsl(read('ca.crt'), [{ cert_chain: read('envoy.crt'), private_key: read('envoy.key') }], true),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
});

afterAll(async () => {
  await new Promise<void>((r) => envoy.tryShutdown(() => r()));
  await new Promise<void>((r) => orders.server.tryShutdown(() => r()));
  await tokens.close();
  rmSync(certDir, { recursive: true, force: true });
});

describe('the compose demo client', () => {
  it('shows an allow, a 401, a 403 and an allow, calling with its SPIFFE client certificate', async () => {
    const settings = demoSettings({
      ENVOY_ADDRESS: `127.0.0.1:${envoyPort}`,
      TOKEN_ENDPOINT: tokens.url,
      CERT_DIR: certDir,
    });
    const lines: string[] = [];
    const results = await runDemo(settings, { log: (l) => lines.push(l), startupAttempts: 1 });
    expect(results.map((r) => [r.expected, r.got])).toEqual([
      ['OK', 'OK'],
      ['UNAUTHENTICATED', 'UNAUTHENTICATED'],
      ['PERMISSION_DENIED', 'PERMISSION_DENIED'],
      ['OK', 'OK'],
    ]);
    expect(results.every((r) => r.ok)).toBe(true);
    // What the walkthrough tells people to look at: the identity the upstream saw, the challenge, the decision id.
    expect(results[0]?.detail).toContain(`app ${DEMO.clients.reader.clientId}`);
    expect(results[0]?.detail).toContain('peer spiffe://entra-authz.demo/ns/demo/sa/demo-client');
    expect(results[1]?.detail).toContain('www-authenticate: Bearer realm="entra-authz"');
    expect(results[2]?.detail).toContain('decision id: dec-403');
    expect(results[3]?.detail).toContain('roles [Orders.Read,Orders.Write]');
    expect(lines.filter((l) => l.startsWith('PASS'))).toHaveLength(4);
    expect(new Set(peersSeen)).toEqual(new Set(['spiffe://entra-authz.demo/ns/demo/sa/demo-client']));
    // Two clients, one token each, however many calls.
    expect(tokens.requests.map((r) => r.form.get('client_id')).sort()).toEqual([DEMO.clients.writer.clientId, DEMO.clients.reader.clientId].sort());
  });

  it('defaults to the emulator\'s demo identities and refuses a plain-http token endpoint unless told', () => {
    const s = demoSettings({});
    expect(s.tokenEndpoint).toBe(`http://entra:9400/${DEMO.tenantId}/oauth2/v2.0/token`);
    expect(s.scope).toBe('api://entra-authz-demo/.default');
    expect(s.reader.clientId).toBe(DEMO.clients.reader.clientId);
    expect(s.allowInsecureTokenEndpoint).toBe(false);
    expect(demoSettings({ ALLOW_INSECURE_TOKEN_ENDPOINT: 'true' }).allowInsecureTokenEndpoint).toBe(true);
  });
});
