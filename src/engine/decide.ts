import { extractToken } from '../authn/bearer.js';
import type { GroupResolver } from '../authn/entra/graph.js';
import type { Config } from '../config/schema.js';
import type { Decision } from '../core/decision.js';
import type { PeerIdentity, TokenIdentity } from '../core/identity.js';
import type { MaybePromise } from '../core/maybe-async.js';
import type { CheckOutcome, PhaseTracer, RequirementOutcome } from '../core/outcome.js';
import { RPC_FAILURE_REASONS, type ReasonCode } from '../core/reasons.js';
import { tokenHash } from '../core/token-hash.js';
import { DEFAULT_REQUEST_LIMITS, type RequestLimits, type RequestView } from '../core/request.js';
import type { TokenVerifier, VerifyResult } from '../core/verifier.js';
import { compilePolicy, type CompiledPolicy } from '../policy/compile.js';
import { checkRequirements, selectRule } from '../policy/evaluate.js';
import { checkTokenBinding, createPeerResolver, DEFAULT_PEER_SETTINGS } from '../authn/mtls/index.js';
import type { PeerResolver, PeerResult } from '../policy/peer.js';

export interface DeciderDeps {
  readonly config: Config;
  /** Group membership for tokens with group overage; without it such tokens cannot meet group requirements. */
  readonly groups?: GroupResolver | undefined;
  readonly verifier: TokenVerifier;
  readonly newId: () => string;
  /** The config's compiled rules; compiled here when omitted. */
  readonly policy?: CompiledPolicy;
  /**
   * Reads the TLS peer (src/authn/mtls) when a rule or a bound token needs it. Default: Envoy's
   * `source` only (no CA bundle, XFCC ignored); the integrator passes one built from `peer:`.
   */
  readonly peer?: PeerResolver;
  /** Wall clock in ms, for certificate validity windows. Default `Date.now`. */
  readonly now?: () => number;
}

const untraced: PhaseTracer = { phase: (_name, fn) => fn() };

interface DenyContext {
  readonly request?: RequestView;
  readonly rule?: string;
  readonly identity?: TokenIdentity;
  readonly outcomes?: readonly RequirementOutcome[];
  readonly peer?: PeerIdentity | undefined;
  readonly rejectedTokenHash?: string;
  /** The claims request of a step-up challenge. */
  readonly claimsChallenge?: string | undefined;
  /** Whether dry-run applies at the point of the denial (top-level before a rule is chosen, the rule's after). */
  readonly dryRun: boolean;
}

/** The decision flow of one configuration; adapters normalise their wire format first. */
export interface Decider {
  /** Limits an adapter normalises requests with (from `server.maxHeaderBytes`). */
  readonly limits: RequestLimits;
  /**
   * Decides one normalised request: at once when nothing needs waiting for (a cached token, no
   * token, no Graph lookup, phases not traced), else as a promise. Never throws (the caller still guards).
   */
  decide(request: RequestView, tracer?: PhaseTracer): MaybePromise<CheckOutcome>;
  /** The outcome for a request the adapter could not read: `request_malformed`, dry-run applied. */
  unreadable(detail: string): CheckOutcome;
}

/**
 * The decision flow: pick the rule, (unless the rule is anonymous) read and
 * verify the token, check the rule's requirements, and apply dry-run. Pure apart from the
 * verifier; never throws (the caller still guards). Everything config-derived is computed here,
 * once: a decider belongs to one configuration, which is how a reload leaves checks in flight on
 * the configuration they started with.
 */
export function createDecider(deps: DeciderDeps): Decider {
  const { config, verifier, newId, groups } = deps;
  const policy = deps.policy ?? compilePolicy(config);
  const peerResolver = deps.peer ?? createPeerResolver(DEFAULT_PEER_SETTINGS);
  const now = deps.now ?? Date.now;
  const limits: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, maxHeaderBytes: config.server.maxHeaderBytes };
  const tokenHeader = config.entra.tokenHeader;

  const denial = (id: string, reason: ReasonCode, detail: string, more: DenyContext, tokenCacheHit?: boolean): CheckOutcome => {
    const { rule, identity } = more;
    // Object literals, not spreads: every denied check builds one.
    let decision: Decision;
    if (more.dryRun) {
      // Report-only: allow, and carry the denial enforcement would have produced.
      decision = { kind: 'allow', id, reason: 'allowed', detail: `dry-run, would deny ${reason}: ${detail}`, rule, identity, dryRun: { wouldDeny: reason, detail } };
    } else if (RPC_FAILURE_REASONS.has(reason)) {
      decision = { kind: 'unavailable', id, reason, detail, rule, identity };
    } else {
      decision = more.claimsChallenge === undefined ? { kind: 'deny', id, reason, detail, rule, identity } : { kind: 'deny', id, reason, detail, rule, identity, claimsChallenge: more.claimsChallenge };
    }
    return { decision, request: more.request, outcomes: more.outcomes ?? [], peer: more.peer, tokenCacheHit, rejectedTokenHash: more.rejectedTokenHash };
  };

  const unreadable = (detail: string): CheckOutcome => denial(newId(), 'request_malformed', detail, { dryRun: policy.dryRun });

  function decide(request: RequestView, tracer: PhaseTracer = untraced): MaybePromise<CheckOutcome> {
    const id = newId();
    let tokenCacheHit: boolean | undefined;
    const deny = (reason: ReasonCode, detail: string, more: DenyContext): CheckOutcome => denial(id, reason, detail, more, tokenCacheHit);

    const selection = selectRule(policy, request);
    if (selection.kind === 'path_not_canonical') {
      return deny('path_not_canonical', `path ${JSON.stringify(request.path.slice(0, 256))} has ${request.pathProblem}`, { request, dryRun: policy.dryRun });
    }
    if (selection.kind === 'none') return deny('no_matching_rule', 'no rule matches the request', { request, dryRun: policy.dryRun });
    const rule = selection.rule;
    const at = { request, rule: rule.name, dryRun: rule.dryRun };

    if (rule.anonymous) {
      // No credential is read: a token sent anyway is neither verified nor passed on as identity.
      return { decision: { kind: 'allow', id, reason: 'allowed_anonymous', detail: `rule ${rule.name}`, rule: rule.name, identity: undefined }, request, outcomes: [] };
    }

    // The peer is resolved at most once per check, on first use.
    let peerResult: PeerResult | undefined;
    const peer = (): PeerResult => (peerResult ??= peerResolver.resolve(request, now()));
    // For headers, metadata and the audit record the peer is read even when no requirement needs it;
    // a peer that cannot be read then only goes unreported (it denies where a rule relies on it).
    const resolvedPeer = (): PeerIdentity | undefined => {
      const p = peer();
      return p.ok ? p.peer : undefined;
    };
    // Work that needs no waiting runs in place unless its phase becomes a span.
    const traced = tracer.recording === true;

    /** The rule's requirements, for the caller as verified (and as Graph completed it). */
    const evaluate = (identity: TokenIdentity | undefined): MaybePromise<CheckOutcome> => {
      const ctx = { identity, peer };
      const judged = (result: ReturnType<typeof checkRequirements>): CheckOutcome => {
        if (!result.ok) {
          return deny(result.reason, result.detail, { request, rule: rule.name, dryRun: rule.dryRun, identity, outcomes: result.outcomes, peer: resolvedPeer(), claimsChallenge: result.claimsChallenge });
        }
        return {
          decision: { kind: 'allow', id, reason: 'allowed', detail: `rule ${rule.name}`, rule: rule.name, identity },
          request,
          outcomes: result.outcomes,
          peer: resolvedPeer(),
          tokenCacheHit,
        };
      };
      return traced ? tracer.phase('policy.evaluate', async () => checkRequirements(rule, ctx)).then(judged) : judged(checkRequirements(rule, ctx));
    };

    /** Group overage: the token cannot say, so Graph is asked about the groups this rule names. */
    const withGroups = (identity: TokenIdentity | undefined): MaybePromise<CheckOutcome> => {
      if (!identity?.groupsOverage || rule.groupIds.length === 0 || groups === undefined) return evaluate(identity);
      return tracer.phase('policy.evaluate', () => groups.memberOf(identity, rule.groupIds)).then((membership) =>
        membership.ok
          ? evaluate({ ...identity, groups: [...membership.memberOf], groupsOverage: false })
          : deny('group_lookup_failed', membership.detail, { ...at, identity, peer: resolvedPeer() }),
      );
    };

    const credential = extractToken(request, tokenHeader);
    if (credential.kind === 'none') {
      return rule.token === 'required' ? deny('token_missing', `no ${tokenHeader} header`, at) : withGroups(undefined);
    }
    if (credential.kind === 'invalid') return deny(credential.reason, credential.detail, at);

    // Also on peerOnly rules: a credential that is sent must be valid.
    const verifiedToken = (verified: VerifyResult): MaybePromise<CheckOutcome> => {
      tokenCacheHit = verified.cacheHit;
      if (!verified.ok) return deny(verified.reason, verified.detail, { ...at, rejectedTokenHash: tokenHash(credential.token) });
      const identity = verified.identity;
      // RFC 8705: a bound token (or one sent as MTLS_POP) is checked against the peer's certificate
      // whatever the rule says — never failing open when no certificate is known.
      if (identity.boundCertificateThumbprint !== undefined || credential.scheme === 'mtls_pop') {
        const p = peer();
        if (!p.ok) return deny(p.reason, p.detail, { ...at, identity });
        const binding = checkTokenBinding(identity, p.peer, { scheme: credential.scheme });
        if (!binding.ok) return deny(binding.reason, binding.detail, { ...at, identity, peer: p.peer });
      }
      return withGroups(identity);
    };
    // A verification the cache still holds comes at once, and is used at once unless the phase is traced.
    const verification = traced ? tracer.phase('token.verify', async () => verifier.verify(credential.token)) : verifier.verify(credential.token);
    return verification instanceof Promise ? verification.then(verifiedToken) : verifiedToken(verification);
  }

  return { limits, decide, unreadable };
}
