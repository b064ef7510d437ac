import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../src/dev/emulator.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
const { writer, reader } = DEMO.clients;

describe('Check over real gRPC against the emulator', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
    await h.waitServing();
  });
  afterAll(() => h.close());

  it('allows a v2 app token with a role and adds identity headers that overwrite', async () => {
    const token = await h.emulator.issueToken({ version: '2.0', audience: DEMO.api.appId, appId: reader.clientId });
    const a = allowance(await h.check({ token, path: '/orders' }));
    expect(a.headers).toMatchObject({
      'x-entra-tid': DEMO.tenantId,
      'x-entra-app-id': reader.clientId,
      'x-entra-roles': 'Orders.Read',
      'x-entra-token-type': 'app',
      'x-entra-oid': h.emulator.oidFor(reader.clientId),
    });
    expect(new Set(a.appendActions)).toEqual(new Set(['OVERWRITE_IF_EXISTS_OR_ADD']));
    expect(a.metadata).toMatchObject({ decision_id: a.headers['x-entra-decision-id'], rule: 'orders-read', reason: 'allowed' });
  });

  it('allows a v1 app token for the App ID URI audience', async () => {
    const token = await h.emulator.issueToken({ version: '1.0', audience: DEMO.api.identifierUri, appId: writer.clientId });
    const a = allowance(await h.check({ token, contextExtensions: { policy: 'orders-write' } }));
    expect(a.metadata).toMatchObject({ rule: 'orders-write', app_id: writer.clientId });
  });

  it('allows a token obtained from the emulator by client credentials', async () => {
    const res = await fetch(`${h.emulator.url}/${DEMO.tenantId}/oauth2/v2.0/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: writer.clientId,
        client_secret: writer.clientSecret,
        scope: `${DEMO.api.identifierUri}/.default`,
      }),
    });
    const { access_token } = (await res.json()) as { access_token: string };
    allowance(await h.check({ token: access_token, contextExtensions: { policy: 'orders-write' } }));
  });

  it('never lets client-sent identity headers reach the upstream', async () => {
    const token = await h.emulator.issueToken({ appId: reader.clientId });
    const a = allowance(
      await h.check({ token, headers: { 'x-entra-oid': 'forged', 'x-entra-roles': 'Admin', 'x-entra-scopes': 'everything' } }),
    );
    expect(a.headers['x-entra-oid']).not.toBe('forged');
    expect(a.headers['x-entra-roles']).toBe('Orders.Read');
    // No scopes in an app token: the forged header is removed rather than left in place.
    expect(a.remove).toContain('x-entra-scopes');
  });

  it('denies with 401 and a bare challenge when no token is sent', async () => {
    const d = denial(await h.check({}));
    expect(d).toMatchObject({ reason: 'token_missing', grpcCode: 16, httpStatus: 'Unauthorized' });
    expect(d.headers['www-authenticate']).toBe(
      `Bearer realm="entra-authz", authorization_uri="${h.emulator.url}/${DEMO.tenantId}/oauth2/authorize"`,
    );
    expect(d.body).toMatchObject({ error: 'token_missing', decision_id: d.headers['x-entra-decision-id'] });
  });

  it('denies with 403 insufficient_scope when the token lacks the rule role', async () => {
    const token = await h.emulator.issueToken({ appId: reader.clientId });
    const d = denial(await h.check({ token, contextExtensions: { policy: 'orders-write' } }));
    expect(d).toMatchObject({ reason: 'missing_role', grpcCode: 7, httpStatus: 'Forbidden' });
    expect(d.headers['www-authenticate']).toContain('error="insufficient_scope"');
  });

  describe('denies with 401 invalid_token', () => {
    const cases: [string, string, (h: Harness) => Promise<string>][] = [
      ['a malformed token', 'token_malformed', async () => 'not.a.jwt'],
      ['an expired token', 'token_expired', (h) => h.emulator.issueToken({ issuedAt: h.clock.now() / 1000 - 7200, expiresInSeconds: 3600 })],
      ['a token not yet valid', 'token_not_yet_valid', (h) => h.emulator.issueToken({ notBefore: h.clock.now() / 1000 + 3600 })],
      ['a token for another audience', 'token_audience_invalid', (h) => h.emulator.issueToken({ claims: { aud: 'api://someone-else' } })],
      [
        'a token of a tenant not on the allow-list',
        'token_tenant_not_allowed',
        (h) => h.emulator.issueToken({ claims: { tid: DEMO.foreignTenantId, iss: `${h.emulator.url}/${DEMO.foreignTenantId}/v2.0` } }),
      ],
      [
        'a token whose issuer names another tenant than its tid',
        'token_issuer_invalid',
        (h) => h.emulator.issueToken({ version: '2.0', claims: { iss: `${h.emulator.url}/${DEMO.foreignTenantId}/v2.0` } }),
      ],
      [
        'an unsigned alg none token',
        'token_alg_not_allowed',
        async (h) => {
          const signed = await h.emulator.issueToken();
          const [, payload] = signed.split('.');
          return `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`;
        },
      ],
      [
        'an HS256 token signed with the public key bytes',
        'token_alg_not_allowed',
        async (h) => {
          const signed = await h.emulator.issueToken();
          const claims = JSON.parse(Buffer.from(signed.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
          return new SignJWT(claims)
            .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: h.emulator.currentKid })
            .sign(new TextEncoder().encode(h.emulator.publicKeyPem()));
        },
      ],
      ['a token signed by a key not in the JWKS', 'token_key_unknown', (h) => h.emulator.signWithUnpublishedKey()],
      ['a token with a nonce header', 'token_nonce_header', (h) => h.emulator.issueToken({ header: { nonce: 'abc' } })],
      ['an oversized token', 'token_too_large', (h) => h.emulator.issueToken({ claims: { padding: 'x'.repeat(70_000) } })],
    ];
    for (const [name, reason, make] of cases) {
      it(`for ${name}`, async () => {
        const token = await make(h);
        const d = denial(await h.check({ token }));
        expect(d.reason).toBe(reason);
        expect(d.httpStatus).toBe('Unauthorized');
        expect(d.headers['www-authenticate']).toContain('error="invalid_token"');
        expect(JSON.stringify(d)).not.toContain(token.slice(0, 40));
      });
    }
  });

  it('denies several Authorization values with 400 invalid_request', async () => {
    const token = await h.emulator.issueToken();
    const d = denial(await h.check({ headers: { authorization: `Bearer ${token},Bearer ${token}` } }));
    expect(d.reason).toBe('token_multiple');
    expect(d.httpStatus).toBe('BadRequest');
    expect(d.headers['www-authenticate']).toContain('error="invalid_request"');
  });

  it('answers a Basic credential with 401 and a Bearer challenge without an error', async () => {
    const d = denial(await h.check({ headers: { authorization: 'Basic dXNlcjpwYXNz' } }));
    expect(d.reason).toBe('token_scheme_unsupported');
    expect(d.httpStatus).toBe('Unauthorized');
    expect(d.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]*", authorization_uri="[^"]*"$/);
  });

  it('denies a token that carries neither roles nor scopes with 401 invalid_token', async () => {
    const token = await h.emulator.issueToken({ appId: DEMO.clients.noRoles.clientId });
    const d = denial(await h.check({ token }));
    expect(d.reason).toBe('token_no_permissions');
    expect(d.httpStatus).toBe('Unauthorized');
    expect(d.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('accepts a v1 token that names its key by x5t only', async () => {
    const token = await h.emulator.issueToken({ version: '1.0', audience: DEMO.api.identifierUri, header: { kid: undefined } });
    expect(JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString())).not.toHaveProperty('kid');
    allowance(await h.check({ token }));
  });
});

describe('bad input never crashes the server', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
    await h.waitServing();
  });
  afterAll(() => h.close());

  const junk: [string, unknown][] = [
    ['an empty request', {}],
    ['attributes without a request', { attributes: {} }],
    ['a request without an http section', { attributes: { request: {} } }],
    ['empty headers', { attributes: { request: { http: { headers: {} } } } }],
    [
      'binary junk in headers',
      { attributes: { request: { http: { method: 'GET', path: '/', headers: { authorization: '\u0000\u0001\u00ff\uffff' } } } } },
    ],
    ['a huge header value', { attributes: { request: { http: { method: 'GET', path: '/', headers: { 'x-big': 'a'.repeat(300_000) } } } } }],
    ['a huge authorization header', { attributes: { request: { http: { method: 'GET', path: '/', headers: { authorization: `Bearer ${'a'.repeat(200_000)}` } } } } }],
  ];
  for (const [name, request] of junk) {
    it(`denies ${name} with a reason code`, async () => {
      const result = await h.sendRaw(request);
      const d = denial(result);
      expect(d.reason).toMatch(/^(request_malformed|token_malformed|token_too_large|token_missing)$/);
    });
  }

  it.each([
    ['random bytes', Buffer.from('9f2e00ff13a7c4e10b', 'hex')],
    ['a truncated length-delimited field', Buffer.from([0x0a, 0xff, 0x01, 0x02])],
    ['a field with wire type 7', Buffer.from([0x0f, 0x00])],
  ])('denies a message of %s that is not a CheckRequest', async (_name, bytes) => {
    expect(denial(await h.sendBytes(bytes))).toMatchObject({ reason: 'request_malformed', httpStatus: 'BadRequest' });
  });

  it('keeps answering after the junk', async () => {
    for (const [, request] of junk) denial(await h.sendRaw(request));
    allowance(await h.check({ token: await h.emulator.issueToken() }));
  });
});

describe('signing keys', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('accepts a token with a new kid after rotation', async () => {
    h = await startHarness();
    await h.waitServing();
    const kid = await h.emulator.rotateKeys({ retireOld: true });
    const token = await h.emulator.issueToken({ kid });
    allowance(await h.check({ token }));
  });

  it('fetches the key set once for a flood of unknown kids, again only once the cooldown is over', async () => {
    h = await startHarness();
    await h.waitServing();
    const cooldownMs = h.config.entra.keys.unknownKidCooldownSeconds * 1000;
    h.emulator.resetCounts();
    const tokens = await Promise.all(Array.from({ length: 100 }, () => h!.emulator.signWithUnpublishedKey()));
    const results = await Promise.all(tokens.map((token) => h!.check({ token })));
    for (const r of results) expect(denial(r).reason).toBe('token_key_unknown');
    expect(h.emulator.fetchCount('jwks')).toBe(1); // one shared fetch for all 100

    // 1 ms before the cooldown ends: no further fetch.
    h.clock.advance(cooldownMs - 1);
    expect(denial(await h.check({ token: await h.emulator.signWithUnpublishedKey() })).reason).toBe('token_key_unknown');
    expect(h.emulator.fetchCount('jwks')).toBe(1);

    // The cooldown is over: exactly one more.
    h.clock.advance(1);
    expect(denial(await h.check({ token: await h.emulator.signWithUnpublishedKey() })).reason).toBe('token_key_unknown');
    expect(h.emulator.fetchCount('jwks')).toBe(2);
  });

  it('still allows with cached keys while Entra is down', async () => {
    h = await startHarness();
    await h.waitServing();
    h.emulator.setAvailable(false);
    allowance(await h.check({ token: await h.emulator.issueToken() }));
  });

  it('fails the RPC with UNAVAILABLE when Entra is down and nothing is cached', async () => {
    h = await startHarness({ emulatorDown: true });
    expect(await h.health()).toBe('NOT_SERVING');
    const result = await h.check({ token: await h.emulator.issueToken() });
    expect(result).toMatchObject({ kind: 'error', code: 14 });
  });

  it('reports NOT_SERVING until keys are loaded, then SERVING', async () => {
    h = await startHarness({ emulatorDown: true });
    expect(await h.health()).toBe('NOT_SERVING');
    expect(await h.health('envoy.service.auth.v3.Authorization')).toBe('NOT_SERVING');
    h.emulator.setAvailable(true);
    await h.waitServing();
    expect(await h.health('envoy.service.auth.v3.Authorization')).toBe('SERVING');
  });

  it('reports NOT_SERVING once shutdown begins', async () => {
    h = await startHarness();
    await h.waitServing();
    expect(h.app.isServing()).toBe(true);
    const closing = h.app.close(500);
    expect(h.app.isServing()).toBe(false);
    await closing;
  });
});

describe('identity headers of other systems', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      rules: [
        { name: 'public', match: { paths: [{ prefix: '/public' }] }, allowAnonymous: true },
        { name: 'orders-read', require: { roles: { anyOf: ['Orders.Read'] } } },
      ],
      response: { stripHeaders: { prefixes: ['x-corp-'] } },
    });
    await h.waitServing();
  });
  afterAll(() => h.close());

  const forged = {
    'x-ms-client-principal-name': 'admin@contoso.com',
    'x-ms-token-aad-access-token': 'forged',
    'x-auth-request-email': 'admin@contoso.com',
    'x-pomerium-claim-groups': 'admins',
    'x-corp-role': 'admin',
  };

  it('removes client-sent copies on an allow with a token', async () => {
    const token = await h.emulator.issueToken({ appId: reader.clientId });
    const a = allowance(await h.check({ token, path: '/orders', headers: forged }));
    expect(a.remove).toEqual(expect.arrayContaining([...Object.keys(forged), 'x-forwarded-user', 'x-forwarded-access-token']));
  });

  it('removes client-sent copies on an anonymous allow too', async () => {
    const a = allowance(await h.check({ path: '/public/logo.png', headers: forged }));
    expect(a.metadata).toMatchObject({ reason: 'allowed_anonymous' });
    expect(a.remove).toEqual(expect.arrayContaining(Object.keys(forged)));
  });
});
