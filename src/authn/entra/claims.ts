/**
 * The claims rules read beyond roles and scopes: group and directory-role membership, how the user
 * and the client authenticated, and whether the client can handle a claims challenge. Read once,
 * after the signature is verified; a claim of the wrong shape makes the token invalid rather than
 * silently empty, so a rule never reads a malformed claim as "no membership".
 */
import type { TokenIdentity } from '../../core/identity.js';
import { NO_STRINGS } from '../../core/values.js';

export type MembershipClaims = Pick<
  TokenIdentity,
  'groups' | 'groupsOverage' | 'directoryRoles' | 'authMethods' | 'authContexts' | 'claimsChallengeCapable'
>;

export type MembershipClaimsResult = { readonly ok: true; readonly claims: MembershipClaims } | { readonly ok: false; readonly detail: string };

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

class ClaimShapeError extends Error {}

/** An absent claim is an empty list; anything but an array of strings is refused. */
function stringList(claims: Record<string, unknown>, name: string, lowerCase = false): readonly string[] {
  const value = claims[name];
  if (value === undefined) return NO_STRINGS;
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) {
    throw new ClaimShapeError(`${name} is not an array of strings`);
  }
  return lowerCase ? value.map((v) => v.toLowerCase()) : value;
}

/**
 * Group overage: over the token's group limit Entra leaves `groups` out and points at another
 * source (`_claim_names.groups`); implicit-flow tokens say `hasgroups: true` instead.
 */
function hasGroupsOverage(claims: Record<string, unknown>): boolean {
  const names = claims['_claim_names'];
  if (isPlainObject(names) && Object.hasOwn(names, 'groups')) return true;
  return claims['hasgroups'] === true;
}

export function readMembershipClaims(claims: Record<string, unknown>): MembershipClaimsResult {
  try {
    // `xms_cc` is documented as an array; a single string is read as a one-element list.
    const xmsCc = typeof claims['xms_cc'] === 'string' ? [claims['xms_cc']] : stringList(claims, 'xms_cc');
    return {
      ok: true,
      claims: {
        groups: stringList(claims, 'groups', true),
        groupsOverage: hasGroupsOverage(claims),
        directoryRoles: stringList(claims, 'wids', true),
        authMethods: stringList(claims, 'amr'),
        authContexts: stringList(claims, 'acrs'),
        claimsChallengeCapable: xmsCc.some((c) => c.toLowerCase() === 'cp1'),
      },
    };
  } catch (err) {
    if (err instanceof ClaimShapeError) return { ok: false, detail: err.message };
    throw err;
  }
}
