import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { exportJWK, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { normalizeCheckRequestJson, parseInstant, runExplain, type ExplainIo, type ExplainReport } from '../../src/cli/explain.js';
import { sharedKeyPairs } from '../fixtures/keys.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const TENANT_2 = 'c0a8e1d2-3b4c-4d5e-8f90-a1b2c3d4e5f6';
const FOREIGN = 'deadbeef-0000-4000-8000-00000000beef';
const API = '6e74172b-be56-4843-9ff4-e66a39bb12e3';
const DAEMON = 'a1b2c3d4-0000-4000-8000-0000000000aa';
const OTHER_APP = 'b1b2c3d4-0000-4000-8000-0000000000bb';
/** When the tokens were issued, and when they are evaluated (a captured token, diagnosed later). */
const ISSUED = Date.UTC(2025, 2, 1, 10, 0, 0) / 1000;
const AT = '2025-03-01T10:30:00Z';

const CONFIG = `
entra:
  tenants: [${TENANT}, ${TENANT_2}]
  audiences: [${API}, api://orders]
rules:
  - name: health
    match: { paths: [{ exact: /healthz }] }
    allowAnonymous: true
  - name: internal
    match: { paths: [{ grpc: shop.inventory.v1.Inventory }] }
    require:
      peer: { peerOnly: true, spiffePatterns: ["spiffe://cluster.local/ns/shop/sa/*"] }
  - name: orders-admin
    description: back-office daemon only
    match: { contextExtensions: { api: orders }, methods: [DELETE] }
    require: { tokenType: app, appIds: [${DAEMON}], roles: { anyOf: [Orders.Admin] } }
  - name: orders-eu
    match: { contextExtensions: { api: orders-eu } }
    require: { tenants: [${TENANT_2}] }
  - name: orders-write
    match: { contextExtensions: { api: orders }, methods: [POST] }
    require: { roles: { anyOf: [Orders.Write] } }
    dryRun: true
  - name: orders-read
    match: { contextExtensions: { api: orders }, methods: [GET] }
    require:
      anyOf:
        - { tokenType: app, roles: { anyOf: [Orders.Read] } }
        - { tokenType: user, scopes: { anyOf: [Orders.Read] } }
  - name: user-profile
    match: { contextExtensions: { api: profile } }
    require: { tokenType: user }
`;

let dir: string;
let key: KeyObject;
let otherKey: KeyObject;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function token(claims: JWTPayload & Record<string, unknown> = {}, opts: { version?: '1.0' | '2.0'; signWith?: KeyObject; tid?: string } = {}): Promise<string> {
  const version = opts.version ?? '2.0';
  const tid = opts.tid ?? TENANT;
  const base =
    version === '2.0'
      ? { iss: `https://login.microsoftonline.com/${tid}/v2.0`, aud: API, azp: DAEMON, azpacr: '2', ver: '2.0' }
      : { iss: `https://sts.windows.net/${tid}/`, aud: 'api://orders', appid: DAEMON, appidacr: '2', ver: '1.0' };
  return new SignJWT({ ...base, tid, oid: 'f0f0f0f0-1111-4222-8333-444444444444', sub: 'f0f0f0f0-1111-4222-8333-444444444444', idtyp: 'app', uti: 'uti1', ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'JWT' })
    .setIssuedAt(ISSUED)
    .setNotBefore(ISSUED)
    .setExpirationTime(ISSUED + 3600)
    .sign(opts.signWith ?? key);
}

const appToken = (roles: string[], extra: Record<string, unknown> = {}) => token({ roles, ...extra });
const userToken = (scp: string, extra: Record<string, unknown> = {}) => token({ scp, idtyp: undefined, sub: 'user-sub', oid: 'user-oid', ...extra });

interface Run {
  code: number;
  out: string;
  err: string;
}

async function explain(args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const io: ExplainIo = {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readText: async (p) => (await import('node:fs/promises')).readFile(p, 'utf8'),
    fetch: async () => {
      throw new Error('explain must not touch the network in offline mode');
    },
    now: () => {
      throw new Error('explain must use --at');
    },
  };
  const code = await runExplain(args, io);
  return { code, out, err };
}

let configPath: string;
let jwksPath: string;
const offline = (): string[] => ['--config', configPath, '--jwks', jwksPath, '--at', AT];

async function report(args: string[]): Promise<ExplainReport> {
  const run = await explain([...offline(), ...args, '--json']);
  expect(run.err).toBe('');
  return JSON.parse(run.out) as ExplainReport;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'explain-'));
  const [pair, other] = sharedKeyPairs();
  if (!pair || !other) throw new Error('the shared key pairs are missing');
  key = pair.privateKey;
  otherKey = other.privateKey;
  const jwk = await exportJWK(pair.publicKey);
  configPath = file('config.yaml', CONFIG);
  jwksPath = file('jwks.json', JSON.stringify({ keys: [{ ...jwk, kid: 'k1', use: 'sig', kty: 'RSA' }] }));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('explain (offline: --jwks and --at)', () => {
  it('explains an allow for a person: decision, rules tried, token, each requirement', async () => {
    const run = await explain([...offline(), '--token', await appToken(['Orders.Read']), '--context', 'api=orders']);
    expect(run.code).toBe(0);
    expect(run.out).toContain('Decision   ALLOW allowed (HTTP 200, gRPC OK)');
    expect(run.out).toContain('Evaluated  2025-03-01T10:30:00.000Z');
    expect(run.out).toContain('[skip]   rules[0] health: path "/" matches none of [exact /healthz]');
    expect(run.out).toContain('[skip]   rules[2] orders-admin: method GET is not one of [DELETE]');
    expect(run.out).toContain('[match]  rules[5] orders-read');
    expect(run.out).toContain(`v2.0 app token, tenant ${TENANT}, app ${DAEMON}`);
    expect(run.out).toContain('[met]    anyOf[0] roles any of [Orders.Read]: has Orders.Read');
    expect(run.out).toContain('[FAILED] anyOf[1] token type user: is app');
    expect(run.out).toContain('[met]    any of 2 alternatives: met by anyOf[0]');
  });

  it('prints the same as JSON', async () => {
    const r = await report(['--token', await userToken('Orders.Read profile'), '--context', 'api=orders']);
    expect(r.decision).toMatchObject({ kind: 'allow', reason: 'allowed', rule: 'orders-read', httpStatus: 200 });
    expect(r.token).toMatchObject({ type: 'user', version: '2.0', scopes: ['Orders.Read', 'profile'] });
    expect(r.rule).toMatchObject({ name: 'orders-read', index: 5, token: 'required' });
    expect(r.rules.at(-1)).toEqual({ rule: 'orders-read', index: 5, matched: true });
    expect(r.requirements.filter((o) => o.met).map((o) => o.requirement)).toEqual([
      'anyOf[1] token type user',
      'anyOf[1] scopes any of [Orders.Read]',
      'any of 2 alternatives',
    ]);
  });

  it('verifies v1 tokens offline too (issuer https://sts.windows.net/{tid}/)', async () => {
    const r = await report(['--token', await token({ roles: ['Orders.Read'] }, { version: '1.0' }), '--context', 'api=orders']);
    expect(r.decision.reason).toBe('allowed');
    expect(r.token?.version).toBe('1.0');
  });

  type Case = [string, () => Promise<string[]>, string, string[]?];
  it.each<Case>([
    ['missing_role', async () => ['--token', await appToken(['Orders.Write']), '--context', 'api=orders'], 'orders-read', ['[FAILED] anyOf[0] roles any of [Orders.Read]: has [Orders.Write]']],
    ['missing_scope', async () => ['--token', await userToken('profile'), '--context', 'api=orders'], 'orders-read', ['[FAILED] anyOf[1] scopes any of [Orders.Read]: has [profile]']],
    [
      'app_not_allowed',
      async () => ['--token', await appToken(['Orders.Admin'], { azp: OTHER_APP }), '--context', 'api=orders', '--method', 'DELETE'],
      'orders-admin',
      [`[FAILED] calling app any of [${DAEMON}]: is ${OTHER_APP}`, '— back-office daemon only'],
    ],
    ['tenant_denied_by_rule', async () => ['--token', await appToken(['x']), '--context', 'api=orders-eu'], 'orders-eu', [`[FAILED] tenant any of [${TENANT_2}]: is ${TENANT}`]],
    ['token_type_not_allowed', async () => ['--token', await appToken(['x']), '--context', 'api=profile'], 'user-profile', ['[FAILED] token type user: is app']],
    ['token_missing', async () => ['--context', 'api=orders'], 'orders-read', []],
    ['no_matching_rule', async () => ['--token', await appToken(['x']), '--context', 'api=billing'], '', ['no rule matched: default deny']],
    ['path_not_canonical', async () => ['--token', await appToken(['x']), '--path', '/a/../healthz'], '', ['the path is not canonical']],
    [
      'token_signature_invalid',
      async () => ['--token', await token({ roles: ['Orders.Read'] }, { signWith: otherKey }), '--context', 'api=orders'],
      'orders-read',
      ['Token (NOT verified', 'requirements were not checked'],
    ],
    [
      'token_tenant_not_allowed',
      async () => ['--token', await token({ roles: ['Orders.Read'] }, { tid: FOREIGN }), '--context', 'api=orders'],
      'orders-read',
      [`tid        ${FOREIGN}`],
    ],
    ['token_audience_invalid', async () => ['--token', await appToken(['Orders.Read'], { aud: 'api://other' }), '--context', 'api=orders'], 'orders-read', ['aud        api://other']],
    ['peer_not_allowed', async () => ['--path', '/shop.inventory.v1.Inventory/Get', '--principal', 'spiffe://cluster.local/ns/other/sa/x'], 'internal', ['[FAILED] peer any of [pattern spiffe://cluster.local/ns/shop/sa/*]']],
    ['peer_missing', async () => ['--path', '/shop.inventory.v1.Inventory/Get'], 'internal', ['no peer identity']],
  ])('explains the deny %s', async (reason, args, rule, snippets = []) => {
    const a = await args();
    const run = await explain([...offline(), ...a]);
    expect(run.code).toBe(1);
    expect(run.out).toMatch(new RegExp(`^Decision   DENY ${reason} \\(HTTP 40[013]`));
    if (rule !== '') expect(run.out).toContain(`Matched: ${rule}`);
    for (const s of snippets) expect(run.out).toContain(s);
    const r = await report(a);
    expect(r.decision.reason).toBe(reason);
  });

  it('explains an expired token by evaluating at a later --at', async () => {
    const t = await appToken(['Orders.Read']);
    const later = await explain(['--config', configPath, '--jwks', jwksPath, '--at', '2025-03-01T12:00:00Z', '--token', t, '--context', 'api=orders']);
    expect(later.code).toBe(1);
    expect(later.out).toContain('Decision   DENY token_expired');
    expect(later.out).toContain('exp        1740826800 (2025-03-01T11:00:00.000Z)');
    // The same token at the instant it was used: allowed.
    expect((await explain([...offline(), '--token', t, '--context', 'api=orders'])).code).toBe(0);
    // Epoch seconds work too.
    expect((await explain(['--config', configPath, '--jwks', jwksPath, '--at', String(ISSUED + 60), '--token', t, '--context', 'api=orders'])).code).toBe(0);
  });

  it('explains a dry-run allow with the would-be denial', async () => {
    const run = await explain([...offline(), '--token', await appToken(['Orders.Read']), '--context', 'api=orders', '--method', 'POST']);
    expect(run.code).toBe(0);
    expect(run.out).toContain('Decision   ALLOW (dry-run) — would deny: missing_role (HTTP 403');
    expect(run.out).toContain('Matched: orders-write (dry-run)');
  });

  it('explains an anonymous route without verifying anything', async () => {
    const run = await explain([...offline(), '--path', '/healthz']);
    expect(run.code).toBe(0);
    expect(run.out).toContain('Decision   ALLOW allowed_anonymous');
    expect(run.out).toContain('no credential was read');
  });

  it('reads a CheckRequest as Envoy sends it (proto3 JSON names), optionally replacing its token', async () => {
    const t = await appToken(['Orders.Read']);
    const snake = envoyCheckRequest({ method: 'GET', path: '/orders', contextExtensions: { api: 'orders' }, token: t });
    const camel = JSON.parse(
      JSON.stringify(snake)
        .replaceAll('"context_extensions"', '"contextExtensions"')
        .replaceAll('"socket_address"', '"socketAddress"')
        .replaceAll('"port_value"', '"portValue"'),
    ) as unknown;
    for (const body of [snake, camel]) {
      const path = file('request.json', JSON.stringify(body));
      const r = await report(['--request', path]);
      expect(r.decision.reason).toBe('allowed');
      expect(r.request).toMatchObject({ method: 'GET', path: '/orders', contextExtensions: { api: 'orders' } });
    }
    const path = file('request.json', JSON.stringify(snake));
    const replaced = await report(['--request', path, '--token', await appToken(['Nothing'])]);
    expect(replaced.decision.reason).toBe('missing_role');
  });

  it('explains an unreadable CheckRequest', async () => {
    const path = file('bad-request.json', JSON.stringify({ attributes: { request: {} } }));
    const run = await explain([...offline(), '--request', path]);
    expect(run.code).toBe(1);
    expect(run.out).toContain('Decision   DENY request_malformed (HTTP 400');
    expect(run.out).toContain('the CheckRequest could not be read');
  });

  it.each([
    [['--token', 'x'], 'explain needs --config FILE'],
    [['--config', 'c', '--token', 'x', '--token-file', 'f'], 'give --token or --token-file, not both'],
    [['--config', 'c', '--request', 'r', '--path', '/x'], 'drop the request flags'],
    [['--bogus'], "Unknown option '--bogus'"],
  ])('refuses bad usage %j with exit 2', async (args, message) => {
    const run = await explain(args);
    expect(run.code).toBe(2);
    expect(run.err).toContain(message);
  });

  it('refuses a bad --at and a bad --jwks', async () => {
    expect((await explain(['--config', configPath, '--at', 'yesterday-ish'])).err).toContain('--at: expected an ISO 8601 time');
    const bad = file('bad-jwks.json', '{"nokeys": true}');
    expect((await explain(['--config', configPath, '--at', AT, '--jwks', bad, '--token', 'a.b.c'])).err).toContain('--jwks: expected a JWK set');
  });
});

describe('explain helpers', () => {
  it('parseInstant takes ISO 8601 and epoch seconds', () => {
    expect(parseInstant('2025-03-01T10:30:00Z')).toBe(Date.UTC(2025, 2, 1, 10, 30));
    expect(parseInstant('1740825000')).toBe(1_740_825_000_000);
  });

  it('normalizeCheckRequestJson keeps header and extension names as they are', () => {
    const out = normalizeCheckRequestJson({
      attributes: { contextExtensions: { routeName: 'x' }, request: { http: { headers: { 'x-fooBar': 'y' }, headerMap: { headers: [{ key: 'a', rawValue: 'Yg==' }] } } } },
    }) as { attributes: { context_extensions: unknown; request: { http: { headers: unknown; header_map: { headers: { raw_value: unknown }[] } } } } };
    expect(out.attributes.context_extensions).toEqual({ routeName: 'x' });
    expect(out.attributes.request.http.headers).toEqual({ 'x-fooBar': 'y' });
    expect(Buffer.from(out.attributes.request.http.header_map.headers[0]?.raw_value as Uint8Array).toString()).toBe('b');
  });
});
