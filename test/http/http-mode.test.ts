import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../src/dev/emulator.js';
import { startHarness, type Harness } from '../support/harness.js';
import { send } from './support.js';

/** The HTTP listener over the real runtime, with tokens from the Entra emulator over real HTTP. */
describe('HTTP authorization mode', () => {
  let h: Harness;
  let base: string;
  const { reader, writer } = DEMO.clients;

  beforeAll(async () => {
    h = await startHarness({
      server: { http: { listen: '127.0.0.1:0' } },
      rules: [
        { name: 'public', match: { paths: [{ prefix: '/public' }] }, allowAnonymous: true },
        { name: 'orders-write', match: { paths: [{ prefix: '/orders' }], methods: ['POST', 'PUT', 'DELETE'] }, require: { roles: { anyOf: ['Orders.Write'] } } },
        { name: 'orders-read', match: { hosts: ['shop.example.com'], paths: [{ prefix: '/orders' }] }, require: { roles: { anyOf: ['Orders.Read', 'Orders.Write'] } } },
      ],
    });
    await h.waitServing();
    base = `http://${h.app.httpAddress}`;
  });
  afterAll(() => h?.close());

  const nginx = (uri: string, headers: [string, string][] = [], method = 'GET') =>
    send(`${base}/nginx`, { headers: [['X-Original-Method', method], ['X-Original-URI', uri], ['X-Original-Host', 'shop.example.com'], ...headers] });
  const forwarded = (uri: string, headers: [string, string][] = [], method = 'GET') =>
    send(`${base}/forward-auth`, { headers: [['X-Forwarded-Method', method], ['X-Forwarded-Uri', uri], ['X-Forwarded-Host', 'shop.example.com'], ['X-Forwarded-Proto', 'https'], ...headers] });
  const bearer = async (appId: string): Promise<[string, string]> => ['Authorization', `Bearer ${await h.emulator.issueToken({ appId })}`];

  it('is off unless server.http is set, and then answers readiness on its own port', async () => {
    const plain = await startHarness();
    try {
      expect(plain.app.httpAddress).toBeUndefined();
    } finally {
      await plain.close();
    }
    expect((await send(`${base}/readyz`)).status).toBe(200);
  });

  it('allows a token with the role and answers the identity headers, with the decision id also in the header', async () => {
    const reply = await nginx('/orders/7?expand=lines', [await bearer(reader.clientId)]);
    expect(reply.status).toBe(200);
    expect(reply.headers['x-entra-app-id']).toBe(reader.clientId);
    expect(reply.headers['x-entra-tid']).toBe(DEMO.tenantId);
    expect(reply.headers['x-entra-roles']).toBe('Orders.Read');
    expect(reply.headers['x-entra-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('matches rules on the original method, not the authorization request method', async () => {
    const reply = await forwarded('/orders', [await bearer(reader.clientId)], 'POST');
    expect(reply.status).toBe(403);
    expect(reply.headers['www-authenticate']).toMatch(/error="insufficient_scope"/);
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'missing_role', decision_id: reply.headers['x-entra-decision-id'] });
    expect((await forwarded('/orders', [await bearer(writer.clientId)], 'POST')).status).toBe(200);
  });

  it('matches rules on the original host, not the authorization server host', async () => {
    const reply = await send(`${base}/forward-auth`, {
      headers: [['X-Forwarded-Method', 'GET'], ['X-Forwarded-Uri', '/orders'], ['X-Forwarded-Host', 'other.example.com'], await bearer(reader.clientId)],
    });
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'no_matching_rule' });
  });

  it('allows the anonymous rule without a token and removes every identity header', async () => {
    const reply = await forwarded('/public/info');
    expect(reply.status).toBe(200);
    expect(reply.headers['x-entra-oid']).toBe('');
  });

  it('denies with 401 and an RFC 6750 invalid_token challenge when the token is expired', async () => {
    const token = await h.emulator.issueToken({ appId: reader.clientId, issuedAt: h.clock.now() / 1000 - 7200, expiresInSeconds: 3600 });
    const reply = await nginx('/orders', [['Authorization', `Bearer ${token}`]]);
    expect(reply.status).toBe(401);
    expect(reply.headers['www-authenticate']).toMatch(/^Bearer realm="entra-authz", authorization_uri="[^"]+", error="invalid_token"/);
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'token_expired' });
  });

  it('denies with 400 token_multiple and an invalid_request challenge when two Authorization headers arrive', async () => {
    const reply = await forwarded('/orders', [await bearer(reader.clientId), await bearer(writer.clientId)]);
    expect(reply.status).toBe(400);
    expect(reply.headers['www-authenticate']).toMatch(/error="invalid_request"/);
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'token_multiple' });
  });

  it('denies a missing or absolute original URI with request_malformed, never a 500', async () => {
    const missing = await send(`${base}/forward-auth`, { headers: [['X-Forwarded-Method', 'GET'], ['X-Forwarded-Host', 'shop.example.com'], await bearer(reader.clientId)] });
    expect(missing.status).toBe(400);
    expect(JSON.parse(missing.body)).toMatchObject({ error: 'request_malformed' });
    const absolute = await nginx('https://shop.example.com/orders', [await bearer(reader.clientId)]);
    expect(absolute.status).toBe(403);
    expect(JSON.parse(absolute.body)).toMatchObject({ error: 'request_malformed' });
  });

  it('denies a path with dot segments as path_not_canonical, as 403 to nginx', async () => {
    const reply = await nginx('/public/../orders', [await bearer(reader.clientId)]);
    expect(reply.status).toBe(403);
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'path_not_canonical' });
    const envoy = await send(`${base}/envoy/public/%2e%2e/orders`, { headers: [['Host', 'shop.example.com']] });
    expect(envoy.status).toBe(400);
    expect(JSON.parse(envoy.body)).toMatchObject({ error: 'path_not_canonical' });
  });

  it('answers Envoy http_service on the /envoy prefix with the original path and asks it to strip unset identity headers', async () => {
    const reply = await send(`${base}/envoy/orders/7`, { method: 'DELETE', headers: [['Host', 'shop.example.com'], await bearer(writer.clientId)] });
    expect(reply.status).toBe(200);
    expect(reply.headers['x-envoy-auth-headers-to-remove']).toContain('x-entra-scopes');
  });
});
