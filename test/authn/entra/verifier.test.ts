import { createHash } from 'node:crypto';
import { SignJWT } from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createKeyStore, type KeyStore } from '../../../src/authn/entra/keystore.js';
import { createTokenVerifier, type TokenVerifier, type VerifyResult } from '../../../src/authn/entra/verifier.js';
import {
  API_APP_ID_URI,
  API_CLIENT_ID,
  AUTHORITY,
  CALLER_APP_ID,
  CALLER_OID,
  createFakeEntra,
  createFakeTime,
  entraConfig,
  makeKeys,
  publicPem,
  signRaw,
  signToken,
  TENANT_A,
  TENANT_B,
  TENANT_MSA,
  TENANT_OTHER,
  unsignedToken,
  USER_OID,
  v1AppClaims,
  v1Issuer,
  v2Issuer,
  v2UserClaims,
  withIssuer,
  type FakeEntra,
  type FakeTime,
  type TestKey,
} from './fixtures.js';

let keyA: TestKey;
let keyA2: TestKey;
let keyB: TestKey;
let msaKey: TestKey;
let stranger: TestKey;

beforeAll(async () => {
  [keyA, keyA2, keyB, msaKey, stranger] = await makeKeys('kid-a-1', 'kid-a-2', 'kid-b-1', 'kid-msa', 'kid-stranger');
});

interface Harness {
  entra: FakeEntra;
  time: FakeTime;
  keys: KeyStore;
  verifier: TokenVerifier;
}

async function harness(overrides: Parameters<typeof entraConfig>[0] = {}): Promise<Harness> {
  const entra = createFakeEntra();
  entra.publish(TENANT_A, [keyA, keyA2]);
  entra.publish(TENANT_B, [keyB]);
  const time = createFakeTime();
  const config = entraConfig(overrides);
  const keys = createKeyStore({ config, fetch: entra.fetch, now: time.now, schedule: time.schedule, random: () => 0.5 });
  await keys.start();
  return { entra, time, keys, verifier: createTokenVerifier({ config, keys, now: time.now }) };
}

function expectDeny(result: VerifyResult, reason: string): void {
  expect(result.ok ? 'allowed' : result.reason).toBe(reason);
}

describe('token verifier', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
  });

  describe('allows', () => {
    it('a valid v2 delegated token and describes the caller', async () => {
      const token = await signToken(keyA, v2UserClaims(h.time.now()));
      const result = await h.verifier.verify(token);
      if (!result.ok) throw new Error(`${result.reason}: ${result.detail}`);
      expect(result.identity).toEqual({
        version: '2.0',
        type: 'user',
        oid: USER_OID,
        sub: 'user-pairwise-sub',
        tid: TENANT_A,
        appId: CALLER_APP_ID,
        appAuth: '0',
        issuer: v2Issuer(TENANT_A),
        audience: API_CLIENT_ID,
        roles: [],
        scopes: ['Orders.Read', 'Orders.Write'],
        groups: [],
        groupsOverage: false,
        directoryRoles: [],
        authMethods: [],
        authContexts: [],
        claimsChallengeCapable: false,
        uti: 'uti-v2-user',
        tokenHash: createHash('sha256').update(token).digest('base64url'),
        expiresAt: Math.floor(h.time.now() / 1000) + 3600,
        boundCertificateThumbprint: undefined,
      });
    });

    it('a valid v1 app-only token (kid and x5t) with appid, appidacr and roles', async () => {
      const token = await signToken(keyA, v1AppClaims(h.time.now()), { typ: 'JWT', kid: keyA.kid, x5t: keyA.x5t });
      const result = await h.verifier.verify(token);
      if (!result.ok) throw new Error(`${result.reason}: ${result.detail}`);
      expect(result.identity).toMatchObject({
        version: '1.0',
        type: 'app',
        oid: CALLER_OID,
        appId: CALLER_APP_ID,
        appAuth: '2',
        issuer: v1Issuer(TENANT_A),
        audience: API_APP_ID_URI,
        roles: ['Orders.ReadAll'],
        scopes: [],
      });
    });

    it('a token of a second allowed tenant, verified with that tenant’s keys', async () => {
      const token = await signToken(keyB, v2UserClaims(h.time.now(), { tid: TENANT_B, iss: v2Issuer(TENANT_B) }));
      expect((await h.verifier.verify(token)).ok).toBe(true);
    });

    it('an app token without idtyp as app when it has no scp and oid equals sub', async () => {
      const claims = v2UserClaims(h.time.now(), { scp: undefined, roles: ['Orders.ReadAll'], sub: USER_OID });
      const result = await h.verifier.verify(await signToken(keyA, claims));
      expect(result.ok && result.identity.type).toBe('app');
    });

    it('an array aud containing an accepted audience', async () => {
      const token = await signToken(keyA, v2UserClaims(h.time.now(), { aud: ['api://other', API_CLIENT_ID] }));
      const result = await h.verifier.verify(token);
      expect(result.ok && result.identity.audience).toBe(API_CLIENT_ID);
    });

    it('a certificate-bound token and exposes the thumbprint', async () => {
      const token = await signToken(keyA, v1AppClaims(h.time.now(), { cnf: { 'x5t#S256': 'abc123' } }));
      const result = await h.verifier.verify(token);
      expect(result.ok && result.identity.boundCertificateThumbprint).toBe('abc123');
    });

    it('a token within the clock skew after exp', async () => {
      const exp = Math.floor(h.time.now() / 1000) - 299;
      const token = await signToken(keyA, v2UserClaims(h.time.now(), { exp }));
      expect((await h.verifier.verify(token)).ok).toBe(true);
    });

    it('a token within the clock skew before nbf', async () => {
      const nbf = Math.floor(h.time.now() / 1000) + 299;
      const token = await signToken(keyA, v2UserClaims(h.time.now(), { nbf }));
      expect((await h.verifier.verify(token)).ok).toBe(true);
    });

    it('an x5t-only token by matching x5t in a multi-key set', async () => {
      // Old v1 tokens name their key by x5t only; jose's JWKS helper cannot pick among several keys.
      const token = await signToken(keyA2, v1AppClaims(h.time.now()), { typ: 'JWT', x5t: keyA2.x5t });
      const result = await h.verifier.verify(token);
      expect(result.ok).toBe(true);
    });

    it('a token without roles or scp when allowTokensWithoutPermissions is set', async () => {
      const lenient = await harness({ allowTokensWithoutPermissions: true });
      const token = await signToken(keyA, v2UserClaims(lenient.time.now(), { scp: undefined }));
      expect((await lenient.verifier.verify(token)).ok).toBe(true);
    });
  });

  describe('denies', () => {
    it('an expired token (beyond the skew) with token_expired', async () => {
      const exp = Math.floor(h.time.now() / 1000) - 300;
      const result = await h.verifier.verify(await signToken(keyA, v2UserClaims(h.time.now(), { exp })));
      expectDeny(result, 'token_expired');
    });

    it('a token that becomes valid beyond the skew with token_not_yet_valid', async () => {
      const nbf = Math.floor(h.time.now() / 1000) + 301;
      const result = await h.verifier.verify(await signToken(keyA, v2UserClaims(h.time.now(), { nbf })));
      expectDeny(result, 'token_not_yet_valid');
    });

    it('a token without exp with token_claims_invalid', async () => {
      const result = await h.verifier.verify(await signToken(keyA, v2UserClaims(h.time.now(), { exp: undefined })));
      expectDeny(result, 'token_claims_invalid');
    });

    it('a wrong audience with token_audience_invalid', async () => {
      const result = await h.verifier.verify(await signToken(keyA, v2UserClaims(h.time.now(), { aud: 'api://someone-else' })));
      expectDeny(result, 'token_audience_invalid');
    });

    it('an audience that merely contains an accepted one with token_audience_invalid', async () => {
      const result = await h.verifier.verify(await signToken(keyA, v2UserClaims(h.time.now(), { aud: `${API_CLIENT_ID}x` })));
      expectDeny(result, 'token_audience_invalid');
    });

    it('a tenant outside the allow-list with token_tenant_not_allowed', async () => {
      const claims = v2UserClaims(h.time.now(), { tid: TENANT_OTHER, iss: v2Issuer(TENANT_OTHER) });
      expectDeny(await h.verifier.verify(await signToken(stranger, claims)), 'token_tenant_not_allowed');
    });

    it('a tid that is not a GUID with token_claims_invalid', async () => {
      const claims = v2UserClaims(h.time.now(), { tid: 'common' });
      expectDeny(await h.verifier.verify(await signToken(keyA, claims)), 'token_claims_invalid');
    });

    it('an allowed tid with the issuer of another tenant with token_issuer_invalid', async () => {
      const claims = v2UserClaims(h.time.now(), { iss: v2Issuer(TENANT_OTHER) });
      const result = await h.verifier.verify(await signToken(keyA, claims));
      expectDeny(result, 'token_issuer_invalid');
    });

    it('an allowed tid with the issuer of another allowed tenant with token_issuer_invalid', async () => {
      const claims = v2UserClaims(h.time.now(), { iss: v2Issuer(TENANT_B) });
      expectDeny(await h.verifier.verify(await signToken(keyA, claims)), 'token_issuer_invalid');
    });

    it.each([
      ['suffix', `${AUTHORITY}/${TENANT_A}/v2.0.evil.example`],
      ['path', `${AUTHORITY}/${TENANT_A}/v2.0/evil`],
      ['prefix', `https://evil.example/${AUTHORITY}/${TENANT_A}/v2.0`],
      ['host', `https://login.microsoftonline.com.evil.example/${TENANT_A}/v2.0`],
      ['case', `${AUTHORITY}/${TENANT_A.toUpperCase()}/v2.0`],
    ])('an issuer that only contains the expected one (%s) with token_issuer_invalid', async (_, iss) => {
      const result = await h.verifier.verify(await signToken(keyA, v2UserClaims(h.time.now(), { iss })));
      expectDeny(result, 'token_issuer_invalid');
      expect(result.ok || result.detail).toContain('is not the issuer of tenant');
    });

    it.each([
      ['suffix', `${v1Issuer(TENANT_A)}evil`],
      ['prefix', `https://evil.example/?${v1Issuer(TENANT_A)}`],
      ['no trailing slash', v1Issuer(TENANT_A).slice(0, -1)],
    ])('a v1 issuer that only contains the expected one (%s) with token_issuer_invalid', async (_, iss) => {
      // v1 JWKS keys carry no issuer property: only the exact issuer match stands in the way.
      const result = await h.verifier.verify(await signToken(keyA, v1AppClaims(h.time.now(), { iss })));
      expectDeny(result, 'token_issuer_invalid');
    });

    it('alg none with token_alg_not_allowed', async () => {
      const token = unsignedToken({ alg: 'none', typ: 'JWT' }, v2UserClaims(h.time.now()));
      const result = await h.verifier.verify(token);
      expectDeny(result, 'token_alg_not_allowed');
      expect(result.ok || result.detail).toContain('"none"');
    });

    it('HS256 keyed with the public key’s PEM bytes with token_alg_not_allowed', async () => {
      const secret = new TextEncoder().encode(await publicPem(keyA));
      const token = await new SignJWT(v2UserClaims(h.time.now()))
        .setProtectedHeader({ alg: 'HS256', kid: keyA.kid })
        .sign(secret);
      expectDeny(await h.verifier.verify(token), 'token_alg_not_allowed');
    });

    it('PS256 with token_alg_not_allowed', async () => {
      const token = await signRaw(keyA, { alg: 'PS256', kid: keyA.kid }, v2UserClaims(h.time.now()));
      expectDeny(await h.verifier.verify(token), 'token_alg_not_allowed');
    });

    it('a kid that is not in the JWKS with token_key_unknown', async () => {
      const token = await signToken(stranger, v2UserClaims(h.time.now()));
      const result = await h.verifier.verify(token);
      expectDeny(result, 'token_key_unknown');
      expect(result.ok || result.detail).toContain('kid-stranger');
    });

    it('a token signed by another key under a known kid with token_signature_invalid', async () => {
      const token = await signToken(stranger, v2UserClaims(h.time.now()), { kid: keyA.kid });
      expectDeny(await h.verifier.verify(token), 'token_signature_invalid');
    });

    it('a tampered payload with token_signature_invalid', async () => {
      const token = await signToken(keyA, v2UserClaims(h.time.now()));
      const [head, , sig] = token.split('.');
      const forged = Buffer.from(JSON.stringify(v2UserClaims(h.time.now(), { scp: 'Orders.Admin' }))).toString('base64url');
      expectDeny(await h.verifier.verify(`${head}.${forged}.${sig}`), 'token_signature_invalid');
    });

    it('a signature too short for the key with token_signature_invalid', async () => {
      const token = await signToken(keyA, v2UserClaims(h.time.now()));
      const [head, payload, sig] = token.split('.') as [string, string, string];
      const short = Buffer.from(sig, 'base64url').subarray(0, 192).toString('base64url');
      expectDeny(await h.verifier.verify(`${head}.${payload}.${short}`), 'token_signature_invalid');
    });

    it('an RS256 token with an empty signature with token_signature_invalid', async () => {
      const token = unsignedToken({ alg: 'RS256', kid: keyA.kid }, v2UserClaims(h.time.now()));
      expectDeny(await h.verifier.verify(token), 'token_signature_invalid');
    });

    it('a nonce header with token_nonce_header', async () => {
      const token = await signToken(keyA, v2UserClaims(h.time.now()), { typ: 'JWT', kid: keyA.kid, nonce: 'abc' });
      expectDeny(await h.verifier.verify(token), 'token_nonce_header');
    });

    it('a crit header with token_malformed', async () => {
      const token = await signRaw(keyA, { alg: 'RS256', kid: keyA.kid, crit: ['exp'], exp: 1 }, v2UserClaims(h.time.now()));
      expectDeny(await h.verifier.verify(token), 'token_malformed');
    });

    it('an oversized token with token_too_large before parsing it', async () => {
      const big = 'a'.repeat(64 * 1024 + 1);
      expectDeny(await h.verifier.verify(big), 'token_too_large');
      const token = await signToken(keyA, v2UserClaims(h.time.now(), { pad: 'x'.repeat(70_000) }));
      expectDeny(await h.verifier.verify(token), 'token_too_large');
    });

    it('a token whose multi-byte characters exceed the byte limit with token_too_large', async () => {
      expectDeny(await h.verifier.verify('é'.repeat(40 * 1024)), 'token_too_large');
    });

    it.each([
      ['empty', ''],
      ['one segment', 'abc'],
      ['two segments', 'abc.def'],
      ['four segments', 'a.b.c.d'],
      ['non-base64url', 'a+b.c/d.e='],
      ['header not JSON', `${Buffer.from('nope').toString('base64url')}.e30.sig`],
      ['header an array', `${Buffer.from('[1]').toString('base64url')}.e30.sig`],
      ['spaces', 'Bearer abc.def.ghi'],
    ])('garbage (%s) with token_malformed', async (_, token) => {
      expectDeny(await h.verifier.verify(token), 'token_malformed');
    });

    it('every other spelling of a valid token (unused bits set, impossible length, padding) with token_malformed', async () => {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      /** The same bytes spelt differently: the last character's lowest (unused) bit flipped. */
      const respell = (segment: string): string =>
        segment.slice(0, -1) + alphabet[alphabet.indexOf(segment.slice(-1)) ^ 1];
      // Fillers of 0, 1 and 2 characters give header and payload segments of every length class.
      for (const filler of ['', 'x', 'xy']) {
        const token = await signToken(keyA, v2UserClaims(h.time.now(), { filler }), { typ: 'JWT', kid: keyA.kid, f: filler });
        expect((await h.verifier.verify(token)).ok).toBe(true);
        const segments = token.split('.');
        for (const [i, segment] of segments.entries()) {
          if (segment.length % 4 === 0) continue; // no unused bits in this segment
          const variant = segments.map((s, j) => (j === i ? respell(s) : s)).join('.');
          expect(Buffer.from(respell(segment), 'base64url')).toEqual(Buffer.from(segment, 'base64url'));
          expectDeny(await h.verifier.verify(variant), 'token_malformed');
        }
      }
      const token = await signToken(keyA, v2UserClaims(h.time.now()));
      expect(token.split('.')[2]?.length).toBe(342);
      expectDeny(await h.verifier.verify(`${token}AAA`), 'token_malformed'); // 345 characters: no byte string has that length
      expectDeny(await h.verifier.verify(`${token}==`), 'token_malformed');
    });

    it('a payload that is not JSON with token_malformed', async () => {
      const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: keyA.kid })).toString('base64url');
      expectDeny(await h.verifier.verify(`${header}.${Buffer.from('{oops').toString('base64url')}.c2ln`), 'token_malformed');
    });

    it('a token with neither roles nor scp with token_no_permissions', async () => {
      const claims = v2UserClaims(h.time.now(), { scp: undefined });
      expectDeny(await h.verifier.verify(await signToken(keyA, claims)), 'token_no_permissions');
      const emptyRoles = v1AppClaims(h.time.now(), { roles: [] });
      expectDeny(await h.verifier.verify(await signToken(keyA, emptyRoles)), 'token_no_permissions');
    });

    it('a token without oid with token_claims_invalid', async () => {
      const claims = v2UserClaims(h.time.now(), { oid: undefined });
      expectDeny(await h.verifier.verify(await signToken(keyA, claims)), 'token_claims_invalid');
    });

    it('a token whose roles claim is not an array of strings with token_claims_invalid', async () => {
      const claims = v1AppClaims(h.time.now(), { roles: 'Orders.ReadAll' });
      expectDeny(await h.verifier.verify(await signToken(keyA, claims)), 'token_claims_invalid');
    });

    it('a token with an unreadable certificate binding with token_claims_invalid', async () => {
      const claims = v1AppClaims(h.time.now(), { cnf: { 'x5t#S256': 42 } });
      expectDeny(await h.verifier.verify(await signToken(keyA, claims)), 'token_claims_invalid');
    });

    it('a token signed by a JWKS key tied to another issuer with token_issuer_invalid', async () => {
      // The `common` JWKS mixes in keys of personal accounts; such a key must not vouch for a tenant.
      h.entra.setKeys(TENANT_A, '2.0', [
        withIssuer(keyA, `${AUTHORITY}/{tenantid}/v2.0`),
        withIssuer(msaKey, `${AUTHORITY}/${TENANT_MSA}/v2.0`),
      ]);
      const token = await signToken(msaKey, v2UserClaims(h.time.now()));
      const result = await h.verifier.verify(token);
      expectDeny(result, 'token_issuer_invalid');
      expect(result.ok || result.detail).toContain(TENANT_MSA);
      // The same tenant's own key (issuer template) still verifies.
      expect((await h.verifier.verify(await signToken(keyA, v2UserClaims(h.time.now())))).ok).toBe(true);
    });

    it('a v1 token signed by a key tied to another tenant’s issuer with token_issuer_invalid', async () => {
      h.entra.setKeys(TENANT_A, '1.0', [withIssuer(msaKey, `${AUTHORITY}/${TENANT_MSA}/v2.0`)]);
      const result = await h.verifier.verify(await signToken(msaKey, v1AppClaims(h.time.now())));
      expectDeny(result, 'token_issuer_invalid');
    });

    it('a v1 token when only 2.0 is accepted with token_version_not_accepted', async () => {
      const v2only = await harness({ tokenVersions: ['2.0'] });
      const result = await v2only.verifier.verify(await signToken(keyA, v1AppClaims(v2only.time.now())));
      expectDeny(result, 'token_version_not_accepted');
      expect(v2only.entra.requests.some((u) => u.endsWith('/discovery/keys'))).toBe(false);
    });

    it('never puts the token or its signature in the detail', async () => {
      const tokens = [
        await signToken(stranger, v2UserClaims(h.time.now())),
        await signToken(stranger, v2UserClaims(h.time.now()), { kid: keyA.kid }),
        await signToken(keyA, v2UserClaims(h.time.now(), { aud: 'api://x' })),
      ];
      for (const token of tokens) {
        const result = await h.verifier.verify(token);
        expect(result.ok).toBe(false);
        const [, payload, sig] = token.split('.') as [string, string, string];
        if (!result.ok) {
          expect(result.detail).not.toContain(sig);
          expect(result.detail).not.toContain(payload);
        }
      }
    });
  });

  it('accepts a v1 token verified by a key tied to the same tenant’s v2 issuer', async () => {
    // Microsoft.IdentityModel allows this: v1 and v2 key sets share keys, issuers are attached to v2.
    h.entra.setKeys(TENANT_A, '1.0', [withIssuer(keyB, `${AUTHORITY}/{tenantid}/v2.0`)]);
    const result = await h.verifier.verify(await signToken(keyB, v1AppClaims(h.time.now())));
    expect(result.ok).toBe(true);
  });

  it('returns keys_unavailable when no keys can be loaded at all', async () => {
    const entra = createFakeEntra();
    entra.setDown(true);
    const time = createFakeTime();
    const config = entraConfig();
    const keys = createKeyStore({ config, fetch: entra.fetch, now: time.now, schedule: time.schedule });
    const verifier = createTokenVerifier({ config, keys, now: time.now });
    expectDeny(await verifier.verify(await signToken(keyA, v2UserClaims(time.now()))), 'keys_unavailable');
  });

  it('never throws, even when the key store does', async () => {
    const config = entraConfig();
    const verifier = createTokenVerifier({
      config,
      now: () => Date.now(),
      keys: {
        expectedIssuer: () => undefined,
        resolveKey: () => Promise.reject(new Error('boom')),
      },
    });
    expectDeny(await verifier.verify(await signToken(keyA, v2UserClaims(Date.now()))), 'internal_error');
    expectDeny(await verifier.verify(undefined as unknown as string), 'token_malformed');
  });
});
