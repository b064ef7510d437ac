import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  importJWK,
  jwtVerify,
  type JWK,
  type JWTPayload,
} from 'jose';
import {
  DEMO,
  startEntraEmulator,
  type EmulatorApi,
  type EmulatorClient,
  type EmulatorOptions,
  type EntraEmulator,
} from '../../src/dev/emulator.js';
import { sharedKeyPairs } from '../fixtures/keys.js';

const T = DEMO.tenantId;
const writer = DEMO.clients.writer;

const V1_API: EmulatorApi = {
  appId: 'b0b00000-0000-4000-8000-000000000001',
  identifierUri: 'api://legacy-orders',
  accessTokenVersion: 1,
  appRoles: ['Legacy.Read'],
  scopes: ['user_impersonation'],
};
const V1_CLIENT: EmulatorClient = {
  clientId: 'c11e0000-0000-4000-8000-0000000000b1',
  clientSecret: 'legacy-secret',
  displayName: 'legacy-caller',
  tenantId: T,
  roles: { [V1_API.appId]: ['Legacy.Read'] },
};

const started: EntraEmulator[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((e) => e.close()));
});

async function start(opts?: EmulatorOptions): Promise<EntraEmulator> {
  const emu = await startEntraEmulator({ keyPairs: sharedKeyPairs(), ...opts });
  started.push(emu);
  return emu;
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown>; res: Response }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, res };
}

async function requestToken(
  emu: EntraEmulator,
  form: Record<string, string>,
  init: { tenant?: string; headers?: Record<string, string>; path?: string } = {},
): Promise<{ status: number; body: Record<string, unknown>; res: Response }> {
  const res = await fetch(`${emu.url}/${init.tenant ?? T}/${init.path ?? 'oauth2/v2.0/token'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...init.headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, res };
}

const clientCredentials = (c: EmulatorClient, scope: string): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_id: c.clientId,
  client_secret: c.clientSecret,
  scope,
});

/** Verifies like a careful API would: remote JWKS from v2 metadata, RS256 pinned, exact iss/aud. */
async function verify(
  emu: EntraEmulator,
  token: string,
  expected: { issuer: string; audience: string },
): Promise<{ payload: JWTPayload; header: Record<string, unknown> }> {
  const jwks = createRemoteJWKSet(new URL(`${emu.url}/${T}/discovery/v2.0/keys`));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    algorithms: ['RS256'],
    issuer: expected.issuer,
    audience: expected.audience,
  });
  return { payload, header: protectedHeader as Record<string, unknown> };
}

/** A token from the emulator verifies against its published v2 keys. */
async function signedByCurrentKey(emu: EntraEmulator): Promise<void> {
  const token = await emu.issueToken();
  expect(decodeProtectedHeader(token).kid).toBe(emu.currentKid);
  await verify(emu, token, { issuer: `${emu.url}/${T}/v2.0`, audience: DEMO.api.appId });
}

describe('Entra emulator: metadata and keys', () => {
  it('serves v2 metadata whose jwks_uri lists the signing key', async () => {
    const emu = await start();
    const { status, body, res } = await getJson(`${emu.url}/${T}/v2.0/.well-known/openid-configuration`);
    expect(status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(body.issuer).toBe(`${emu.url}/${T}/v2.0`);
    expect(body.jwks_uri).toBe(`${emu.url}/${T}/discovery/v2.0/keys`);
    expect(body.token_endpoint).toBe(`${emu.url}/${T}/oauth2/v2.0/token`);
    expect(body.id_token_signing_alg_values_supported).toEqual(['RS256']);

    const keys = (await getJson(String(body.jwks_uri))).body.keys as Record<string, unknown>[];
    expect(keys.map((k) => k.kid)).toContain(emu.currentKid);
    expect(keys.length).toBe(2); // current signer plus a standby, like Entra's several keys
    for (const k of keys) {
      expect(Object.keys(k).sort()).toEqual(['e', 'issuer', 'kid', 'kty', 'n', 'use', 'x5c', 'x5t']);
      expect(k).toMatchObject({ kty: 'RSA', use: 'sig', issuer: `${emu.url}/{tenantid}/v2.0` });
      expect(k).not.toHaveProperty('alg');
    }
  });

  it('publishes a real self-signed certificate whose SHA-1 thumbprint is both x5t and kid', async () => {
    const emu = await start();
    const keys = (await getJson(`${emu.url}/${T}/discovery/v2.0/keys`)).body.keys as Record<string, unknown>[];
    for (const k of keys) {
      const der = Buffer.from((k.x5c as string[])[0] ?? '', 'base64');
      const cert = new X509Certificate(der);
      expect(cert.subject).toBe('CN=accounts.accesscontrol.windows.net');
      expect(cert.verify(cert.publicKey)).toBe(true);
      expect(k.x5t).toBe(createHash('sha1').update(der).digest('base64url'));
      expect(k.kid).toBe(k.x5t);
      const fromJwk = createPublicKey({ key: { kty: 'RSA', n: k.n as string, e: k.e as string }, format: 'jwk' });
      expect(cert.publicKey.equals(fromJwk)).toBe(true);
    }
    const pem = emu.publicKeyPem();
    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const current = keys.find((k) => k.kid === emu.currentKid);
    expect(createPublicKey(pem).export({ format: 'jwk' })).toMatchObject({ n: current?.n, e: current?.e });
  });

  it('serves v1 metadata with the sts.windows.net issuer and a JWKS without issuer properties', async () => {
    const emu = await start();
    const { status, body } = await getJson(`${emu.url}/${T}/.well-known/openid-configuration`);
    expect(status).toBe(200);
    expect(body.issuer).toBe(`https://sts.windows.net/${T}/`);
    expect(body.jwks_uri).toBe(`${emu.url}/${T}/discovery/keys`);
    const keys = (await getJson(String(body.jwks_uri))).body.keys as Record<string, unknown>[];
    expect(keys.map((k) => k.kid)).toEqual(emu.publishedKids);
    for (const k of keys) {
      expect(k).not.toHaveProperty('issuer');
      expect(k).not.toHaveProperty('alg');
    }
  });

  it('serves multi-tenant metadata with the {tenantid} issuer template', async () => {
    const emu = await start();
    const v2 = await getJson(`${emu.url}/common/v2.0/.well-known/openid-configuration`);
    expect(v2.body.issuer).toBe(`${emu.url}/{tenantid}/v2.0`);
    expect(v2.body.jwks_uri).toBe(`${emu.url}/common/discovery/v2.0/keys`);
    const v1 = await getJson(`${emu.url}/organizations/.well-known/openid-configuration`);
    expect(v1.body.issuer).toBe('https://sts.windows.net/{tenantid}/');
  });

  it('answers an unknown tenant with an Entra-like 400 invalid_tenant', async () => {
    const emu = await start();
    for (const path of [
      `${DEMO.foreignTenantId}/v2.0/.well-known/openid-configuration`,
      `${DEMO.foreignTenantId}/discovery/v2.0/keys`,
      'not-a-tenant/.well-known/openid-configuration',
      '%E0%A4%A/discovery/keys',
    ]) {
      const { status, body } = await getJson(`${emu.url}/${path}`);
      expect(status, path).toBe(400);
      expect(body).toMatchObject({ error: 'invalid_tenant', error_codes: [90002] });
      expect(String(body.error_description)).toMatch(/^AADSTS90002: Tenant '.*' not found/);
    }
  });

  it('serves every configured tenant with the same keys', async () => {
    const other = 'c0ffee00-0000-4000-8000-0000000000aa';
    const emu = await start({ tenants: [T, other] });
    const a = (await getJson(`${emu.url}/${T}/discovery/v2.0/keys`)).body;
    const b = (await getJson(`${emu.url}/${other.toUpperCase()}/discovery/v2.0/keys`)).body;
    expect(b).toEqual(a);
    const meta = (await getJson(`${emu.url}/${other}/v2.0/.well-known/openid-configuration`)).body;
    expect(meta.issuer).toBe(`${emu.url}/${other}/v2.0`);
  });
});

describe('Entra emulator: token endpoint (client credentials)', () => {
  it('issues a v2 token with the client roles to a v2 API, verifiable with the published keys', async () => {
    const emu = await start();
    const { status, body, res } = await requestToken(emu, clientCredentials(writer, 'api://entra-authz-demo/.default'));
    expect(status).toBe(200);
    expect(res.headers.get('cache-control')).toMatch(/no-store/);
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
    const { payload, header } = await verify(emu, String(body.access_token), {
      issuer: `${emu.url}/${T}/v2.0`,
      audience: DEMO.api.appId,
    });
    expect(header).toEqual({ typ: 'JWT', alg: 'RS256', kid: emu.currentKid });
    expect(payload).toMatchObject({
      ver: '2.0',
      tid: T,
      azp: writer.clientId,
      azpacr: '1',
      idtyp: 'app',
      oid: emu.oidFor(writer.clientId),
      sub: emu.oidFor(writer.clientId),
      roles: ['Orders.Read', 'Orders.Write'],
    });
    expect(payload).not.toHaveProperty('scp');
    expect(payload).not.toHaveProperty('appid');
    expect(typeof payload.uti).toBe('string');
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(3600);
    expect(payload.nbf).toBe(payload.iat);
  });

  it('issues a v1 token with roles for a client-credentials request to a v1 API', async () => {
    const emu = await start({ apis: [DEMO.api, V1_API], clients: [writer, V1_CLIENT] });
    // The v2 endpoint still yields a v1 token: the API's registration decides the version.
    const { status, body } = await requestToken(emu, clientCredentials(V1_CLIENT, 'api://legacy-orders/.default'));
    expect(status).toBe(200);
    const token = String(body.access_token);
    const { payload, header } = await verify(emu, token, {
      issuer: `https://sts.windows.net/${T}/`,
      audience: 'api://legacy-orders',
    });
    expect(header).toEqual({ typ: 'JWT', alg: 'RS256', x5t: emu.currentKid, kid: emu.currentKid });
    expect(payload).toMatchObject({
      ver: '1.0',
      appid: V1_CLIENT.clientId,
      appidacr: '1',
      idtyp: 'app',
      roles: ['Legacy.Read'],
      tid: T,
    });
    expect(payload).not.toHaveProperty('azp');
    expect(payload.oid).toBe(payload.sub);
  });

  it('puts the GUID in a v1 token audience when the client asked for the GUID', async () => {
    const emu = await start({ apis: [V1_API], clients: [V1_CLIENT] });
    const { body } = await requestToken(emu, clientCredentials(V1_CLIENT, `${V1_API.appId}/.default`));
    expect(decodeJwt(String(body.access_token)).aud).toBe(V1_API.appId);
  });

  it('serves the v1 token endpoint with a resource parameter', async () => {
    const emu = await start({ apis: [V1_API], clients: [V1_CLIENT] });
    const { status, body } = await requestToken(
      emu,
      { grant_type: 'client_credentials', client_id: V1_CLIENT.clientId, client_secret: V1_CLIENT.clientSecret, resource: V1_API.identifierUri },
      { path: 'oauth2/token' },
    );
    expect(status).toBe(200);
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: '3600', resource: V1_API.identifierUri });
    expect(decodeJwt(String(body.access_token))).toMatchObject({ ver: '1.0', aud: V1_API.identifierUri });
  });

  it('accepts client credentials via HTTP Basic auth', async () => {
    const emu = await start();
    const basic = Buffer.from(`${encodeURIComponent(writer.clientId)}:${encodeURIComponent(writer.clientSecret)}`).toString('base64');
    const { status, body } = await requestToken(
      emu,
      { grant_type: 'client_credentials', scope: `${DEMO.api.appId}/.default` },
      { headers: { authorization: `Basic ${basic}` } },
    );
    expect(status).toBe(200);
    expect(decodeJwt(String(body.access_token)).azp).toBe(writer.clientId);
  });

  it('omits the roles claim for a client without assignments', async () => {
    const emu = await start();
    const { status, body } = await requestToken(emu, clientCredentials(DEMO.clients.noRoles, 'api://entra-authz-demo/.default'));
    expect(status).toBe(200);
    const payload = decodeJwt(String(body.access_token));
    expect(payload).not.toHaveProperty('roles');
    expect(payload.idtyp).toBe('app');
  });

  it('refuses a wrong client secret with invalid_client', async () => {
    const emu = await start();
    const { status, body } = await requestToken(emu, {
      ...clientCredentials(writer, 'api://entra-authz-demo/.default'),
      client_secret: 'wrong',
    });
    expect(status).toBe(401);
    expect(body).toMatchObject({ error: 'invalid_client', error_codes: [7000215] });
    expect(body).not.toHaveProperty('access_token');
  });

  it('refuses an unknown client, a client of another tenant and a missing secret with invalid_client', async () => {
    const other = 'c0ffee00-0000-4000-8000-0000000000aa';
    const emu = await start({ tenants: [T, other] });
    const unknown = await requestToken(emu, {
      ...clientCredentials(writer, 'api://entra-authz-demo/.default'),
      client_id: 'c11e0000-0000-4000-8000-00000000dead',
    });
    expect(unknown.status).toBe(401);
    expect(unknown.body).toMatchObject({ error: 'invalid_client', error_codes: [700016] });
    const wrongTenant = await requestToken(emu, clientCredentials(writer, 'api://entra-authz-demo/.default'), { tenant: other });
    expect(wrongTenant.status).toBe(401);
    expect(wrongTenant.body.error).toBe('invalid_client');
    const { client_secret: _omit, ...noSecret } = clientCredentials(writer, 'api://entra-authz-demo/.default');
    const missing = await requestToken(emu, noSecret);
    expect(missing.status).toBe(401);
    expect(missing.body.error).toBe('invalid_client');
  });

  it('refuses a wrong Basic secret with invalid_client and a Basic challenge', async () => {
    const emu = await start();
    const basic = Buffer.from(`${writer.clientId}:nope`).toString('base64');
    const { status, body, res } = await requestToken(
      emu,
      { grant_type: 'client_credentials', scope: 'api://entra-authz-demo/.default' },
      { headers: { authorization: `Basic ${basic}` } },
    );
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
  });

  it('refuses an unknown scope or a scope without /.default with invalid_scope', async () => {
    const emu = await start();
    for (const scope of ['api://nobody/.default', 'api://entra-authz-demo/Orders.Read', 'api://entra-authz-demo/.default openid']) {
      const { status, body } = await requestToken(emu, clientCredentials(writer, scope));
      expect(status, scope).toBe(400);
      expect(body.error, scope).toBe('invalid_scope');
    }
  });

  it('refuses malformed requests with invalid_request or unsupported_grant_type', async () => {
    const emu = await start();
    const base = clientCredentials(writer, 'api://entra-authz-demo/.default');
    const { grant_type: _g, ...noGrant } = base;
    expect((await requestToken(emu, noGrant)).body.error).toBe('invalid_request');
    const { scope: _s, ...noScope } = base;
    expect((await requestToken(emu, noScope)).body.error).toBe('invalid_request');
    const password = await requestToken(emu, { ...base, grant_type: 'password' });
    expect(password).toMatchObject({ status: 400, body: { error: 'unsupported_grant_type' } });

    const json = await fetch(`${emu.url}/${T}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(base),
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as Record<string, unknown>).error).toBe('invalid_request');

    const duplicated = await fetch(`${emu.url}/${T}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${new URLSearchParams(base).toString()}&scope=api%3A%2F%2Fother%2F.default`,
    });
    expect(duplicated.status).toBe(400);
    expect(((await duplicated.json()) as Record<string, unknown>).error).toBe('invalid_request');

    const garbage = await fetch(`${emu.url}/${T}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.from([0xff, 0xfe, 0x00, 0x25, 0x26, 0x3d]),
    });
    expect(garbage.status).toBe(400);
  });

  it('refuses client credentials on /common and token requests for unknown tenants', async () => {
    const emu = await start();
    const common = await requestToken(emu, clientCredentials(writer, 'api://entra-authz-demo/.default'), { tenant: 'common' });
    expect(common).toMatchObject({ status: 400, body: { error: 'invalid_request', error_codes: [50194] } });
    const unknown = await requestToken(emu, clientCredentials(writer, 'api://entra-authz-demo/.default'), {
      tenant: DEMO.foreignTenantId,
    });
    expect(unknown).toMatchObject({ status: 400, body: { error_codes: [90002] } });
  });

  it('caps the token request body at 64 KiB', async () => {
    const emu = await start();
    const res = await fetch(`${emu.url}/${T}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&pad=${'x'.repeat(70 * 1024)}`,
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as Record<string, unknown>).error).toBe('invalid_request');
    // The emulator keeps serving afterwards.
    expect((await requestToken(emu, clientCredentials(writer, 'api://entra-authz-demo/.default'))).status).toBe(200);
  });
});

describe('Entra emulator: HTTP robustness', () => {
  it('answers wrong methods with 405 and an Allow header, unknown paths with 404', async () => {
    const emu = await start();
    const post = await fetch(`${emu.url}/${T}/discovery/v2.0/keys`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const get = await fetch(`${emu.url}/${T}/oauth2/v2.0/token`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const head = await fetch(`${emu.url}/${T}/discovery/v2.0/keys`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect((await fetch(`${emu.url}/`)).status).toBe(404);
    expect((await fetch(`${emu.url}/${T}/v2.0/.well-known/nope`)).status).toBe(404);
  });

  it('survives garbage on the wire and keeps serving', async () => {
    const emu = await start();
    const { port } = new URL(emu.url);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.end('\x00\x01GARBAGE \xff\r\n\r\n'));
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await fetch(`${emu.url}/${T}/discovery/v2.0/keys`)).status).toBe(200);
  });
});

describe('Entra emulator: control', () => {
  it('rotation publishes a new kid and can retire the old one', async () => {
    const emu = await start();
    const [first, standby] = emu.publishedKids;
    expect(first).toBe(emu.currentKid);

    const second = await emu.rotateKeys();
    expect(second).not.toBe(first);
    expect(emu.currentKid).toBe(second);
    expect(emu.publishedKids).toEqual([first, standby, second]);
    const keysNow = (await getJson(`${emu.url}/${T}/discovery/v2.0/keys`)).body.keys as JWK[];
    expect(keysNow.map((k) => k.kid)).toEqual([first, standby, second]);
    const token = await emu.issueToken();
    expect(decodeProtectedHeader(token).kid).toBe(second);
    await verify(emu, token, { issuer: `${emu.url}/${T}/v2.0`, audience: DEMO.api.appId });

    const third = await emu.rotateKeys({ retireOld: true });
    const keysAfter = (await getJson(`${emu.url}/${T}/discovery/keys`)).body.keys as JWK[];
    expect(keysAfter.map((k) => k.kid)).toEqual([third]);
    // A token signed with a retired key no longer verifies against the published set.
    const old = await emu.issueToken({ kid: first });
    expect(decodeProtectedHeader(old).kid).toBe(first);
    await expect(verify(emu, old, { issuer: `${emu.url}/${T}/v2.0`, audience: DEMO.api.appId })).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
  });

  it('signs with the pre-made key pairs it is given, in order, and generates keys once they run out', async () => {
    const pairs = sharedKeyPairs().slice(0, 3);
    const modulus = (pem: string): unknown => createPublicKey(pem).export({ format: 'jwk' }).n;
    const given = pairs.map((p) => p.publicKey.export({ format: 'jwk' }).n);
    const emu = await start({ keyPairs: pairs });
    expect(emu.publishedKids.map((kid) => modulus(emu.publicKeyPem(kid)))).toEqual(given.slice(0, 2));
    const third = await emu.rotateKeys(); // the third pair
    expect(modulus(emu.publicKeyPem(third))).toBe(given[2]);
    await signedByCurrentKey(emu);

    const unpublished = decodeProtectedHeader(await emu.signWithUnpublishedKey()).kid as string; // none left: generated
    expect(given).not.toContain(modulus(emu.publicKeyPem(unpublished)));
    expect(emu.publishedKids).not.toContain(unpublished);
  });

  it('rotates keys on POST /_emulator/rotate', async () => {
    const emu = await start();
    const before = emu.currentKid;
    const res = await fetch(`${emu.url}/_emulator/rotate?retireOld=true`, { method: 'POST' });
    expect(res.status).toBe(200);
    const { kid } = (await res.json()) as { kid: string };
    expect(kid).not.toBe(before);
    expect(emu.currentKid).toBe(kid);
    expect(emu.publishedKids).toEqual([kid]);
  });

  it('answers 503 while unavailable and recovers', async () => {
    const emu = await start();
    emu.setAvailable(false);
    expect((await fetch(`${emu.url}/${T}/v2.0/.well-known/openid-configuration`)).status).toBe(503);
    expect((await fetch(`${emu.url}/${T}/discovery/v2.0/keys`)).status).toBe(503);
    const token = await requestToken(emu, clientCredentials(writer, 'api://entra-authz-demo/.default'));
    expect(token.status).toBe(503);
    expect(token.body.error).toBe('temporarily_unavailable');
    // Tests can still mint tokens directly while "Entra" is down.
    expect(await emu.issueToken()).toMatch(/^ey/);
    emu.setAvailable(true);
    expect((await fetch(`${emu.url}/${T}/discovery/v2.0/keys`)).status).toBe(200);
  });

  it('counts JWKS and discovery fetches, including failed attempts, until reset', async () => {
    const emu = await start();
    expect(emu.fetchCount('jwks')).toBe(0);
    await fetch(`${emu.url}/${T}/discovery/v2.0/keys`);
    await fetch(`${emu.url}/${T}/discovery/keys`);
    await fetch(`${emu.url}/${T}/v2.0/.well-known/openid-configuration`);
    emu.setAvailable(false);
    await fetch(`${emu.url}/${T}/discovery/v2.0/keys`);
    await fetch(`${emu.url}/${T}/discovery/v2.0/keys`, { method: 'POST', body: '' }); // 405: not a fetch
    expect(emu.fetchCount('jwks')).toBe(3);
    expect(emu.fetchCount('discovery')).toBe(1);
    expect(emu.fetchCount('token')).toBe(0);
    emu.resetCounts();
    expect(emu.fetchCount('jwks')).toBe(0);
    expect(emu.fetchCount('discovery')).toBe(0);
  });

  it('close drops a request held by the response delay and is idempotent', async () => {
    const emu = await start();
    emu.setResponseDelay(60_000);
    const pending = fetch(`${emu.url}/${T}/discovery/v2.0/keys`).then(
      () => 'answered',
      () => 'dropped',
    );
    // Wait until the request has reached the emulator (and is being delayed).
    await expect.poll(() => emu.fetchCount('jwks')).toBe(1);
    await emu.close();
    await emu.close();
    expect(await pending).toBe('dropped');
  });
});

describe('Entra emulator: minting tokens for tests', () => {
  it('mints a default token like the token endpoint would, on the injected clock', async () => {
    let nowMs = Date.UTC(2030, 0, 1, 12, 0, 0);
    const emu = await start({ now: () => nowMs });
    nowMs += 5000;
    const token = await emu.issueToken();
    const payload = decodeJwt(token);
    expect(payload.iat).toBe(Date.UTC(2030, 0, 1, 12, 0, 5) / 1000);
    expect(payload).toMatchObject({
      ver: '2.0',
      aud: DEMO.api.appId,
      azp: writer.clientId,
      roles: ['Orders.Read', 'Orders.Write'],
      oid: emu.oidFor(writer.clientId),
    });
    await jwtVerify(token, createRemoteJWKSet(new URL(`${emu.url}/${T}/discovery/v2.0/keys`)), {
      algorithms: ['RS256'],
      currentDate: new Date(nowMs),
      issuer: `${emu.url}/${T}/v2.0`,
    });
  });

  it('mints v1 tokens for a foreign tenant and explicit times', async () => {
    const emu = await start();
    const token = await emu.issueToken({
      version: '1.0',
      tenant: DEMO.foreignTenantId,
      roles: ['X'],
      issuedAt: 1000,
      notBefore: 1100,
      expiresInSeconds: -10,
    });
    expect(decodeJwt(token)).toMatchObject({
      iss: `https://sts.windows.net/${DEMO.foreignTenantId}/`,
      tid: DEMO.foreignTenantId,
      aud: DEMO.api.identifierUri,
      roles: ['X'],
      iat: 1000,
      nbf: 1100,
      exp: 990,
    });
    expect(decodeProtectedHeader(token)).toMatchObject({ x5t: emu.currentKid, kid: emu.currentKid });
  });

  it('mints user tokens with space-separated scp and a pairwise sub', async () => {
    const emu = await start();
    const payload = decodeJwt(await emu.issueToken({ scopes: ['access_as_user', 'Orders.Read'] }));
    expect(payload).toMatchObject({ scp: 'access_as_user Orders.Read', idtyp: 'user', azpacr: '0' });
    expect(payload).not.toHaveProperty('roles');
    expect(payload.sub).not.toBe(payload.oid);
  });

  it('merges claim and header overrides last, undefined deleting', async () => {
    const emu = await start();
    const token = await emu.issueToken({
      version: '1.0',
      claims: { roles: undefined, aud: 'spn:whatever', extra: 1 },
      header: { kid: undefined, nonce: 'abc' },
    });
    const payload = decodeJwt(token);
    expect(payload).not.toHaveProperty('roles');
    expect(payload).toMatchObject({ aud: 'spn:whatever', extra: 1 });
    const header = decodeProtectedHeader(token);
    expect(header).toEqual({ typ: 'JWT', alg: 'RS256', x5t: emu.currentKid, nonce: 'abc' });
    // An x5t-only token is still resolvable by its thumbprint.
    const keys = (await getJson(`${emu.url}/${T}/discovery/keys`)).body.keys as JWK[];
    const jwk = keys.find((k) => k.x5t === header.x5t);
    expect(jwk).toBeDefined();
    await expect(jwtVerify(token, await importJWK(jwk as JWK, 'RS256'), { algorithms: ['RS256'] })).resolves.toBeTruthy();
  });

  it('signs with an unpublished key that no JWKS can verify', async () => {
    const emu = await start();
    const issuer = `${emu.url}/${T}/v2.0`;
    const fresh = await emu.signWithUnpublishedKey();
    const kid = decodeProtectedHeader(fresh).kid;
    expect(kid).toBeDefined();
    expect(emu.publishedKids).not.toContain(kid);
    await expect(verify(emu, fresh, { issuer, audience: DEMO.api.appId })).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
    // Right kid, wrong key: the signature check must fail.
    const forged = await emu.signWithUnpublishedKey({ kid: emu.currentKid });
    await expect(verify(emu, forged, { issuer, audience: DEMO.api.appId })).rejects.toMatchObject({
      code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    });
    // An unknown kid on a token signed by the current key.
    const unknownKid = await emu.issueToken({ kid: 'not-a-published-kid' });
    expect(decodeProtectedHeader(unknownKid).kid).toBe('not-a-published-kid');
    await expect(verify(emu, unknownKid, { issuer, audience: DEMO.api.appId })).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
  });

  it('rejects invalid options loudly', async () => {
    await expect(startEntraEmulator({ tenants: ['contoso'] })).rejects.toThrow(/not a GUID/);
    await expect(
      startEntraEmulator({ clients: [{ ...V1_CLIENT, tenantId: DEMO.foreignTenantId }] }),
    ).rejects.toThrow(/not served/);
  });

  it('moves the demo clients into a customised tenant', async () => {
    const other = 'c0ffee00-0000-4000-8000-0000000000aa';
    const emu = await start({ tenants: [other] });
    expect(emu.clients.every((c) => c.tenantId === other)).toBe(true);
    const { status } = await requestToken(emu, clientCredentials(writer, 'api://entra-authz-demo/.default'), { tenant: other });
    expect(status).toBe(200);
  });
});
