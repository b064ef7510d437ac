/**
 * Rule selection and requirement checks over a compiled policy. Pure and total: whatever the
 * request holds, nothing here throws (the request view is already normalized and every lookup is
 * a Set/string operation on values the compiler validated).
 */
import type { TokenIdentity } from '../core/identity.js';
import type { RequirementOutcome } from '../core/outcome.js';
import type { ReasonCode } from '../core/reasons.js';
import type { RequestView } from '../core/request.js';
import { displayName, type CompiledMatch, type CompiledPolicy, type CompiledRequirementSet, type CompiledRule, type CompiledValueCheck } from './compile.js';
import { grpcServicePrefix, hostForMatching, prefixMatches } from './patterns.js';
import { checkPeer, type PeerResult } from './peer.js';

export type { RequirementOutcome } from '../core/outcome.js';

export type RequirementResult =
  | { readonly ok: true; readonly outcomes: readonly RequirementOutcome[] }
  | {
      readonly ok: false;
      readonly reason: ReasonCode;
      readonly detail: string;
      readonly outcomes: readonly RequirementOutcome[];
      /** For `step_up_required`: the claims request (JSON) the client should ask Entra for. */
      readonly claimsChallenge?: string;
    };

export type RuleSelection =
  | { readonly kind: 'rule'; readonly rule: CompiledRule }
  | { readonly kind: 'none' }
  /** Some rule matches on paths and this path cannot be normalized safely (see core/path.ts). */
  | { readonly kind: 'path_not_canonical' };

/** The request values rules look at, derived once per check. */
interface Facts {
  readonly request: RequestView;
  readonly host: string;
  readonly grpcService: string;
}

function factsOf(request: RequestView): Facts {
  return { request, host: hostForMatching(request.host), grpcService: grpcServicePrefix(request.path) };
}

function hostMatches(hosts: NonNullable<CompiledMatch['hosts']>, host: string): boolean {
  if (hosts.exact.has(host)) return true;
  for (const suffix of hosts.suffixes) if (host.length > suffix.length && host.endsWith(suffix)) return true;
  return false;
}

function pathMatches(paths: NonNullable<CompiledMatch['paths']>, path: string, grpcService: string): boolean {
  if (paths.exact.has(path)) return true;
  if (grpcService !== '' && paths.grpcServices.has(grpcService)) return true;
  for (const prefix of paths.prefixes) if (prefixMatches(prefix, path)) return true;
  return false;
}

/** Why a rule's match does not fit, or undefined when it fits. Checks in a fixed order. */
function mismatch(match: CompiledMatch, facts: Facts): string | undefined {
  const { request } = facts;
  for (const [key, value] of match.contextExtensions) {
    // Own properties only: `contextExtensions` is a null-prototype map, but stay safe regardless.
    const got = Object.hasOwn(request.contextExtensions, key) ? request.contextExtensions[key] : undefined;
    if (got !== value) {
      return got === undefined
        ? `context extension ${JSON.stringify(key)} is absent (want ${JSON.stringify(value)})`
        : `context extension ${JSON.stringify(key)} is ${JSON.stringify(got)} (want ${JSON.stringify(value)})`;
    }
  }
  if (match.hosts && !hostMatches(match.hosts, facts.host)) return `host ${JSON.stringify(facts.host)} is not one of ${match.hosts.label}`;
  if (match.paths && !pathMatches(match.paths, request.path, facts.grpcService)) {
    return `path ${JSON.stringify(request.path)} matches none of ${match.paths.label}`;
  }
  if (match.methods && !match.methods.has(request.method)) return `method ${request.method} is not one of [${[...match.methods].join(', ')}]`;
  return undefined;
}

/** Whether a compiled match fits a request (hot path: no string building). */
function fits(match: CompiledMatch, facts: Facts): boolean {
  const { request } = facts;
  for (const [key, value] of match.contextExtensions) {
    if (!Object.hasOwn(request.contextExtensions, key) || request.contextExtensions[key] !== value) return false;
  }
  if (match.hosts && !hostMatches(match.hosts, facts.host)) return false;
  if (match.paths && !pathMatches(match.paths, request.path, facts.grpcService)) return false;
  if (match.methods && !match.methods.has(request.method)) return false;
  return true;
}

/**
 * The first rule, in file order, whose match fits the request; `none` means default deny.
 * A path that cannot be normalized is refused before any rule is tried when some rule matches on paths.
 */
export function selectRule(policy: CompiledPolicy, request: RequestView): RuleSelection {
  if (policy.matchesPaths && request.pathProblem !== '') return { kind: 'path_not_canonical' };
  const facts = factsOf(request);
  for (const rule of policy.rules) if (fits(rule.match, facts)) return { kind: 'rule', rule };
  return { kind: 'none' };
}

/** One line of the rule trace `explain` prints: every rule tried, up to the one that matched. */
export interface RuleTrace {
  readonly rule: string;
  readonly index: number;
  readonly matched: boolean;
  /** Why the rule did not match. */
  readonly mismatch: string | undefined;
}

/** Like `selectRule`, also saying why each earlier rule did not match (for explain; not the hot path). */
export function traceRules(policy: CompiledPolicy, request: RequestView): { readonly selection: RuleSelection; readonly trace: readonly RuleTrace[] } {
  const selection = selectRule(policy, request);
  if (selection.kind === 'path_not_canonical') return { selection, trace: [] };
  const facts = factsOf(request);
  const trace: RuleTrace[] = [];
  for (const rule of policy.rules) {
    const why = mismatch(rule.match, facts);
    trace.push({ rule: rule.name, index: rule.index, matched: why === undefined, mismatch: why });
    if (why === undefined) break;
  }
  return { selection, trace };
}

/** What requirements are checked against. */
export interface EvaluationContext {
  /** The verified token, when the rule needs one. */
  readonly identity: TokenIdentity | undefined;
  /** Resolved lazily (certificate parsing costs), and only for rules with peer requirements. */
  readonly peer: () => PeerResult;
}

/** One claim of an OpenID Connect claims request (`{"access_token": {name: request}}`). */
type ClaimRequest = readonly [name: string, request: Readonly<Record<string, unknown>>];

interface Failure {
  readonly reason: ReasonCode;
  readonly text: string;
  /** Set when a new token could meet the requirement (step-up): what to ask Entra for. */
  readonly claim?: ClaimRequest;
}

/** Shown values are capped: a token may carry up to 200 groups. */
const SHOWN_VALUES = 10;
const show = (values: readonly string[]): string =>
  values.length <= SHOWN_VALUES ? `[${values.join(', ')}]` : `[${values.slice(0, SHOWN_VALUES).join(', ')}, … ${values.length - SHOWN_VALUES} more]`;

/** `appidacr`/`azpacr` as a strength 0–2, or undefined when absent or unknown. */
function clientAuthStrength(appAuth: string | undefined): number | undefined {
  return appAuth === '0' || appAuth === '1' || appAuth === '2' ? Number(appAuth) : undefined;
}
const CLIENT_AUTH_NAMES = ['public client', 'client secret', 'certificate'];

function checkValues(
  check: CompiledValueCheck | undefined,
  held: readonly string[],
  reason: ReasonCode,
  prefix: string,
  out: RequirementOutcome[],
  failures: Failure[],
): void {
  if (!check) return;
  const named = (values: readonly string[]): string => values.map((v) => displayName(v, check.names)).join(', ');
  if (check.anyOf) {
    const hit = held.filter((v) => check.anyOf?.has(v));
    const met = hit.length > 0;
    const detail = met ? `has ${named(hit)}` : `has ${show(held)}`;
    out.push({ requirement: prefix + check.anyLabel, met, detail });
    if (!met) failures.push({ reason, text: `${prefix}${check.anyLabel}: ${detail}` });
  }
  if (check.allOf) {
    const missing = check.allOf.filter((v) => !held.includes(v));
    const met = missing.length === 0;
    const detail = met ? 'has all' : `lacks ${named(missing)}`;
    out.push({ requirement: prefix + check.allLabel, met, detail });
    if (!met) failures.push({ reason, text: `${prefix}${check.allLabel}: ${detail}` });
  }
}

/**
 * Checks one requirement set in a fixed order — token type, tenant, calling app and how it
 * authenticated, roles, scopes, groups, directory roles, MFA, authentication context, peer —
 * recording every outcome (so explain shows them all) and every failure in that order.
 */
function checkSet(set: CompiledRequirementSet, ctx: EvaluationContext, prefix: string, out: RequirementOutcome[]): Failure[] {
  const failures: Failure[] = [];
  const id = ctx.identity;
  const one = (label: string, met: boolean, detail: string, reason: ReasonCode, claim?: ClaimRequest): void => {
    out.push({ requirement: prefix + label, met, detail });
    if (!met) failures.push(claim ? { reason, text: `${prefix}${label}: ${detail}`, claim } : { reason, text: `${prefix}${label}: ${detail}` });
  };
  const tokenNeeded =
    set.tokenType !== undefined ||
    set.tenants ||
    set.appIds ||
    set.roles ||
    set.scopes ||
    set.groups ||
    set.directoryRoles ||
    set.clientAuthentication !== undefined ||
    set.mfa ||
    set.authenticationContext !== undefined;
  if (tokenNeeded && id === undefined) {
    // An alternative that reads the token, in a rule where a peerOnly alternative made it optional.
    one('a verified token', false, 'no token was sent', 'token_missing');
    return failures;
  }
  if (id !== undefined) {
    if (set.tokenType !== undefined) one(set.labels.tokenType, id.type === set.tokenType, `is ${id.type}`, 'token_type_not_allowed');
    if (set.tenants) one(set.labels.tenants, set.tenants.has(id.tid.toLowerCase()), `is ${id.tid}`, 'tenant_denied_by_rule');
    if (set.appIds) one(set.labels.appIds, set.appIds.has(id.appId.toLowerCase()), `is ${id.appId === '' ? '(none)' : id.appId}`, 'app_not_allowed');
    if (set.clientAuthentication !== undefined) {
      const strength = clientAuthStrength(id.appAuth);
      const detail = strength === undefined ? `is unknown (${id.version === '1.0' ? 'appidacr' : 'azpacr'} ${id.appAuth ?? 'absent'})` : `is ${CLIENT_AUTH_NAMES[strength]}`;
      one(set.labels.clientAuthentication, strength !== undefined && strength >= set.clientAuthentication, detail, 'client_authentication_too_weak');
    }
    checkValues(set.roles, id.roles, 'missing_role', prefix, out, failures);
    checkValues(set.scopes, id.scopes, 'missing_scope', prefix, out, failures);
    // With group overage the token's `groups` says nothing about membership: a miss is unresolved, not a denial of membership.
    checkValues(set.groups, id.groups, id.groupsOverage ? 'group_overage_unresolved' : 'missing_group', prefix, out, failures);
    checkValues(set.directoryRoles, id.directoryRoles, 'missing_directory_role', prefix, out, failures);
    if (set.mfa) {
      one('multi-factor authentication', id.authMethods.includes('mfa'), `amr is ${show(id.authMethods)}`, 'mfa_required', ['amr', { essential: true, values: ['mfa'] }]);
    }
    if (set.authenticationContext !== undefined) {
      const wanted = set.authenticationContext;
      one(`authentication context ${wanted}`, id.authContexts.includes(wanted), `acrs is ${show(id.authContexts)}`, 'authentication_context_required', [
        'acrs',
        { essential: true, value: wanted },
      ]);
    }
  }
  if (set.peer) {
    const result = checkPeer(set.peer, ctx.peer(), id);
    one(set.peer.label, result.met, result.detail, result.met ? 'allowed' : result.reason);
  }
  return failures;
}

/**
 * Checks a rule's requirements: the ones written directly under `require` must all be met, and
 * when `anyOf` is given at least one alternative must be met in full. Every requirement is
 * evaluated (so explain can show them all); the reason is the first failure of the direct
 * requirements, else that of the alternative that came closest: one whose token type fits
 * before one whose does not, then the fewest failures, then the earlier one.
 */
export function checkRequirements(rule: CompiledRule, ctx: EvaluationContext): RequirementResult {
  const outcomes: RequirementOutcome[] = [];
  const failures = checkSet(rule.requirement, ctx, '', outcomes);
  const alternatives = rule.requirement.alternatives;
  if (alternatives.length > 0) {
    let best: Failure[] | undefined;
    let bestScore = Infinity;
    let metBy = -1;
    alternatives.forEach((alt, i) => {
      const altFailures = checkSet(alt, ctx, `anyOf[${i}] `, outcomes);
      if (altFailures.length === 0 && metBy === -1) metBy = i;
      // An alternative written for the other kind of token explains least: rank it last.
      const score = altFailures.length + (altFailures.some((f) => f.reason === 'token_type_not_allowed') ? 1000 : 0);
      if (score < bestScore) {
        best = altFailures;
        bestScore = score;
      }
    });
    const met = metBy !== -1;
    outcomes.push({
      requirement: `any of ${alternatives.length} alternatives`,
      met,
      detail: met ? `met by anyOf[${metBy}]` : 'none met in full',
    });
    if (!met && best !== undefined) failures.push(...(best as Failure[]));
  }
  const first = failures[0];
  if (first === undefined) return { ok: true, outcomes };
  const detail = failures.map((f) => f.text).join('; ');
  const claimsChallenge = ctx.identity?.claimsChallengeCapable ? stepUpClaims(failures) : undefined;
  if (claimsChallenge !== undefined) return { ok: false, reason: 'step_up_required', detail, outcomes, claimsChallenge };
  return { ok: false, reason: first.reason, detail, outcomes };
}

/**
 * The claims request that would meet every failure, when a new token could (only MFA and
 * authentication contexts can be stepped up to; a missing role cannot). The first request for a
 * claim wins: a token that then lacks another context is challenged again.
 */
function stepUpClaims(failures: readonly Failure[]): string | undefined {
  const requested: Record<string, Readonly<Record<string, unknown>>> = {};
  for (const f of failures) {
    if (f.claim === undefined) return undefined;
    const [name, request] = f.claim;
    requested[name] ??= request;
  }
  return JSON.stringify({ access_token: requested });
}
