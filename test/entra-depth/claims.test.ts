import { describe, expect, it } from 'vitest';
import { readMembershipClaims } from '../../src/authn/entra/claims.js';

describe('membership and authentication claims of a verified token', () => {
  it('reads groups and wids lower-cased, amr and acrs as given', () => {
    const r = readMembershipClaims({ groups: ['AB-1'], wids: ['F2EF'], amr: ['pwd', 'mfa'], acrs: ['c1'] });
    expect(r).toEqual({
      ok: true,
      claims: { groups: ['ab-1'], groupsOverage: false, directoryRoles: ['f2ef'], authMethods: ['pwd', 'mfa'], authContexts: ['c1'], claimsChallengeCapable: false },
    });
  });

  it('reads absent claims as empty, not as an error', () => {
    expect(readMembershipClaims({})).toMatchObject({ ok: true, claims: { groups: [], authContexts: [], claimsChallengeCapable: false } });
  });

  it('recognises cp1 in xms_cc in any case, as a list or a single string', () => {
    expect(readMembershipClaims({ xms_cc: ['cp2', 'CP1'] })).toMatchObject({ claims: { claimsChallengeCapable: true } });
    expect(readMembershipClaims({ xms_cc: 'cp1' })).toMatchObject({ claims: { claimsChallengeCapable: true } });
    expect(readMembershipClaims({ xms_cc: ['cp10'] })).toMatchObject({ claims: { claimsChallengeCapable: false } });
  });

  it('marks group overage from _claim_names.groups or hasgroups, and nothing else', () => {
    expect(readMembershipClaims({ _claim_names: { groups: 'src1' } })).toMatchObject({ claims: { groupsOverage: true } });
    expect(readMembershipClaims({ hasgroups: true })).toMatchObject({ claims: { groupsOverage: true } });
    expect(readMembershipClaims({ hasgroups: 'true', _claim_names: { other: 'src1' } })).toMatchObject({ claims: { groupsOverage: false } });
  });

  it.each([
    ['groups', { groups: 'a' }],
    ['wids', { wids: [1] }],
    ['amr', { amr: { 0: 'mfa' } }],
    ['acrs', { acrs: 'c1' }],
    ['xms_cc', { xms_cc: [null] }],
  ])('refuses a %s claim that is not a list of strings', (name, claims) => {
    expect(readMembershipClaims(claims)).toEqual({ ok: false, detail: `${name} is not an array of strings` });
  });
});
