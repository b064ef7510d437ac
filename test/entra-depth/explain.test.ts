import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExplain, type ExplainIo } from '../../src/cli/explain.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const API = '6e74172b-be56-4843-9ff4-e66a39bb12e3';
const CLIENT = 'a1b2c3d4-0000-4000-8000-0000000000aa';
const PAYMENTS = '0f8e2d1c-0000-4000-8000-00000000aaaa';
const ISSUED = Date.UTC(2025, 2, 1, 10, 0, 0) / 1000;

const CONFIG = `
entra:
  tenants: [${TENANT}]
  audiences: [${API}]
rules:
  - name: transfers
    require:
      tokenType: user
      clientAuthentication: secret
      groups: { anyOf: [{ id: ${PAYMENTS}, label: Payments admins }] }
      authenticationContext: c1
`;

let dir: string;
let key: CryptoKey;
let args: string[];

const userToken = (claims: Record<string, unknown>): Promise<string> =>
  new SignJWT({
    iss: `https://login.microsoftonline.com/${TENANT}/v2.0`,
    aud: API,
    azp: CLIENT,
    azpacr: '1',
    ver: '2.0',
    tid: TENANT,
    oid: 'user-oid',
    sub: 'user-sub',
    scp: 'Transfers.Write',
    ...claims,
  })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'JWT' })
    .setIssuedAt(ISSUED)
    .setExpirationTime(ISSUED + 3600)
    .sign(key);

async function explain(token: string): Promise<{ code: number; out: string }> {
  let out = '';
  const io: ExplainIo = {
    out: (t) => void (out += t),
    err: () => undefined,
    readText: (p) => readFile(p, 'utf8'),
    fetch: async () => {
      throw new Error('offline');
    },
    now: () => {
      throw new Error('explain must use --at');
    },
  };
  const code = await runExplain([...args, '--token', token], io);
  return { code, out };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'explain-entra-'));
  const pair = await generateKeyPair('RS256', { extractable: true });
  key = pair.privateKey;
  const jwk = await exportJWK(pair.publicKey);
  writeFileSync(join(dir, 'config.yaml'), CONFIG);
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...jwk, kid: 'k1', use: 'sig' }] }));
  args = ['--config', join(dir, 'config.yaml'), '--jwks', join(dir, 'jwks.json'), '--at', '2025-03-01T10:30:00Z'];
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('explain shows the Entra claims rules read and each such requirement', () => {
  it('names groups by their label and shows amr, acrs and client authentication', async () => {
    const run = await explain(await userToken({ groups: [PAYMENTS], acrs: ['c1'], amr: ['pwd', 'mfa'] }));
    expect(run.out).toContain(`groups   ${PAYMENTS}`);
    expect(run.out).toContain('client authentication client secret (1)');
    expect(run.out).toContain('amr      pwd, mfa');
    expect(run.out).toContain(`groups any of [Payments admins (${PAYMENTS})]: has Payments admins (${PAYMENTS})`);
    expect(run.out).toContain('authentication context c1: acrs is [c1]');
    expect(run.out).toContain('client authentication secret or stronger: is client secret');
  });

  it('says when the groups are not in the token because of overage, and which step-up a cp1 client is asked for', async () => {
    const run = await explain(await userToken({ hasgroups: true, xms_cc: ['cp1'] }));
    expect(run.out).toContain('groups   not in the token (group overage)');
    expect(run.out).toContain('(client handles claims challenges: cp1)');
    expect(run.out).toContain('group_overage_unresolved');
  });
});
