import type { TokenIdentity } from './identity.js';
import type { ReasonCode } from './reasons.js';

/**
 * A decision is data: the policy produces it, the server adapter turns it into Envoy's
 * CheckResponse, telemetry records it. Only the adapter knows the protobuf shape.
 */
export interface DecisionBase {
  /** Unique id shared by the response's dynamic metadata, the audit record and the span. */
  readonly id: string;
  readonly reason: ReasonCode;
  /** Name of the rule that decided, when one matched. */
  readonly rule: string | undefined;
  /** Verified token identity, when a token was verified (also on denies after verification). */
  readonly identity: TokenIdentity | undefined;
  /** Internal detail for the audit log only (never sent to the caller, never token contents). */
  readonly detail: string;
  /**
   * Set on an allow that was granted only because of dry-run (globally or on the rule): the
   * denial that enforcement would have produced. Audit records and metrics must report it.
   */
  readonly dryRun?: DryRunRecord;
}

/** A denial that dry-run turned into an allow. */
export interface DryRunRecord {
  readonly wouldDeny: ReasonCode;
  /** The would-be denial's internal detail (audit only). */
  readonly detail: string;
}

export interface AllowDecision extends DecisionBase {
  readonly kind: 'allow';
}

export interface DenyDecision extends DecisionBase {
  readonly kind: 'deny';
  /**
   * For `step_up_required`: the OpenID Connect claims request (JSON) a new token must satisfy,
   * sent base64-encoded in the `claims` parameter of the challenge.
   */
  readonly claimsChallenge?: string;
}

/**
 * The check could not be decided because a dependency (Entra) is unreachable and nothing usable
 * is cached: the RPC fails with UNAVAILABLE so Envoy's failure_mode_allow / status_on_error apply.
 */
export interface UnavailableDecision extends DecisionBase {
  readonly kind: 'unavailable';
}

export type Decision = AllowDecision | DenyDecision | UnavailableDecision;
