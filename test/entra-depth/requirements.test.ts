import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../src/dev/emulator.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

const { writer, reader } = DEMO.clients;
const PAYMENTS = '0f8e2d1c-0000-4000-8000-00000000aaaa';
const AUDITORS = '1c2d3e4f-0000-4000-8000-00000000bbbb';
/** Role template id of Global Reader. */
const GLOBAL_READER = 'f2ef992c-3afb-46b9-b7cf-a126ee74c451';

const rules = [
  {
    name: 'payments',
    match: { contextExtensions: { policy: 'payments' } },
    require: { groups: { anyOf: [{ id: PAYMENTS, label: 'Payments admins' }, AUDITORS] } },
  },
  { name: 'both-groups', match: { contextExtensions: { policy: 'both-groups' } }, require: { groups: { allOf: [PAYMENTS, AUDITORS] } } },
  { name: 'directory', match: { contextExtensions: { policy: 'directory' } }, require: { directoryRoles: { anyOf: [{ id: GLOBAL_READER, label: 'Global Reader' }] } } },
  { name: 'delete', match: { contextExtensions: { policy: 'delete' } }, require: { clientAuthentication: 'certificate' } },
  { name: 'secret-or-better', match: { contextExtensions: { policy: 'secret' } }, require: { clientAuthentication: 'secret' } },
  { name: 'mfa', match: { contextExtensions: { policy: 'mfa' } }, require: { tokenType: 'user', mfa: true } },
  { name: 'sensitive', match: { contextExtensions: { policy: 'sensitive' } }, require: { tokenType: 'user', authenticationContext: 'c1' } },
  {
    name: 'sensitive-writer',
    match: { contextExtensions: { policy: 'sensitive-writer' } },
    require: { authenticationContext: 'c1', scopes: { anyOf: ['Orders.Write'] } },
  },
  { name: 'any', require: {} },
];

const decodeClaims = (header: string): unknown => {
  const m = /claims="([^"]+)"/.exec(header);
  return m ? JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8')) : undefined;
};

describe('rule requirements on Entra group, role and authentication claims (real server, emulator tokens)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ rules });
    await h.waitServing();
  });
  afterAll(() => h.close());

  const appToken = (claims: Record<string, unknown>) => h.emulator.issueToken({ appId: reader.clientId, claims });
  const userToken = (claims: Record<string, unknown>, scopes = ['Orders.Read']) => h.emulator.issueToken({ appId: reader.clientId, scopes, claims });
  const check = async (policy: string, token: string) => h.check({ token, contextExtensions: { policy } });

  describe('groups', () => {
    it('allows a caller in any of the listed groups', async () => {
      allowance(await check('payments', await appToken({ groups: ['99999999-0000-4000-8000-000000000000', AUDITORS] })));
    });

    it('matches group ids whatever their case', async () => {
      allowance(await check('payments', await appToken({ groups: [PAYMENTS.toUpperCase()] })));
    });

    it('denies with 403 missing_group when the caller is in none of them', async () => {
      const d = denial(await check('payments', await appToken({ groups: ['99999999-0000-4000-8000-000000000000'] })));
      expect(d).toMatchObject({ reason: 'missing_group', grpcCode: 7, httpStatus: 'Forbidden' });
      expect(d.headers['www-authenticate']).toContain('error="insufficient_scope"');
    });

    it('denies with 403 missing_group when allOf names a group the caller lacks', async () => {
      allowance(await check('both-groups', await appToken({ groups: [AUDITORS, PAYMENTS] })));
      expect(denial(await check('both-groups', await appToken({ groups: [AUDITORS] }))).reason).toBe('missing_group');
    });

    it('denies with group_overage_unresolved, not as a non-member, when the token names its groups elsewhere', async () => {
      const overage = {
        _claim_names: { groups: 'src1' },
        _claim_sources: { src1: { endpoint: `https://graph.windows.net/${DEMO.tenantId}/users/x/getMemberObjects` } },
      };
      expect(denial(await check('payments', await appToken(overage))).reason).toBe('group_overage_unresolved');
      expect(denial(await check('payments', await appToken({ hasgroups: true }))).reason).toBe('group_overage_unresolved');
    });

    it('refuses a token whose groups claim is not a list of strings as invalid (401)', async () => {
      const d = denial(await check('any', await appToken({ groups: 'not-a-list' })));
      expect(d).toMatchObject({ reason: 'token_claims_invalid', grpcCode: 16 });
    });
  });

  describe('directory roles', () => {
    it('allows a caller holding the role template id in wids and denies one without it', async () => {
      allowance(await check('directory', await userToken({ wids: [GLOBAL_READER, 'b79fbf4d-3ef9-4689-8143-76b194e85509'] })));
      const d = denial(await check('directory', await userToken({ wids: ['b79fbf4d-3ef9-4689-8143-76b194e85509'] })));
      expect(d).toMatchObject({ reason: 'missing_directory_role', grpcCode: 7 });
    });
  });

  describe('client authentication strength', () => {
    it('allows a certificate (or managed identity) caller where certificate is required', async () => {
      allowance(await check('delete', await appToken({ azpacr: '2' })));
      allowance(await check('delete', await h.emulator.issueToken({ version: '1.0', appId: writer.clientId, claims: { appidacr: '2' } })));
    });

    it('denies a secret or public client with 403 client_authentication_too_weak where certificate is required', async () => {
      for (const acr of ['1', '0']) {
        const d = denial(await check('delete', await appToken({ azpacr: acr })));
        expect(d).toMatchObject({ reason: 'client_authentication_too_weak', grpcCode: 7, httpStatus: 'Forbidden' });
      }
    });

    it('treats a missing or unknown azpacr as too weak', async () => {
      expect(denial(await check('secret', await appToken({ azpacr: undefined }))).reason).toBe('client_authentication_too_weak');
      expect(denial(await check('secret', await appToken({ azpacr: '3' }))).reason).toBe('client_authentication_too_weak');
      allowance(await check('secret', await appToken({ azpacr: '1' })));
    });
  });

  describe('MFA and authentication context', () => {
    it('allows a user token whose amr contains mfa', async () => {
      allowance(await check('mfa', await userToken({ amr: ['pwd', 'mfa'] })));
    });

    it('answers a client that handles claims challenges with 401 insufficient_claims asking for MFA', async () => {
      const d = denial(await check('mfa', await userToken({ amr: ['pwd'], xms_cc: ['CP1'] })));
      expect(d).toMatchObject({ reason: 'step_up_required', grpcCode: 16, httpStatus: 'Unauthorized' });
      expect(decodeClaims(d.headers['www-authenticate']!)).toEqual({ access_token: { amr: { essential: true, values: ['mfa'] } } });
    });

    it('denies a client that cannot handle claims challenges with 403 mfa_required', async () => {
      const d = denial(await check('mfa', await userToken({ amr: ['pwd'] })));
      expect(d).toMatchObject({ reason: 'mfa_required', grpcCode: 7, httpStatus: 'Forbidden' });
      expect(d.headers['www-authenticate']).toContain('error="insufficient_scope"');
    });

    it('allows a token that satisfies the authentication context', async () => {
      allowance(await check('sensitive', await userToken({ acrs: ['c1', 'c2'] })));
    });

    it('sends the exact claims challenge Microsoft documents to a cp1 client lacking the context', async () => {
      const d = denial(await check('sensitive', await userToken({ acrs: ['c2'], xms_cc: ['cp1'] })));
      expect(d).toMatchObject({ reason: 'step_up_required', grpcCode: 16, httpStatus: 'Unauthorized' });
      const claims = Buffer.from('{"access_token":{"acrs":{"essential":true,"value":"c1"}}}').toString('base64');
      expect(d.headers['www-authenticate']).toBe(
        `Bearer realm="entra-authz", authorization_uri="${h.emulator.url}/${DEMO.tenantId}/oauth2/authorize", error="insufficient_claims", claims="${claims}"`,
      );
    });

    it('denies with 403 authentication_context_required when the client did not declare cp1', async () => {
      const d = denial(await check('sensitive', await userToken({ xms_cc: ['cp2'] })));
      expect(d).toMatchObject({ reason: 'authentication_context_required', grpcCode: 7, httpStatus: 'Forbidden' });
    });

    it('does not ask a cp1 client to step up when a new token would still lack a scope', async () => {
      const d = denial(await check('sensitive-writer', await userToken({ xms_cc: ['cp1'] }, ['Orders.Read'])));
      expect(d.reason).toBe('missing_scope');
      expect(d.headers['www-authenticate']).not.toContain('claims=');
    });

    it('never challenges an app token, which cannot step up', async () => {
      const d = denial(await check('sensitive', await appToken({ xms_cc: ['cp1'] })));
      expect(d.reason).toBe('token_type_not_allowed');
    });
  });
});
