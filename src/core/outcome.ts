import type { Decision } from './decision.js';
import type { PeerIdentity } from './identity.js';
import type { RequestView } from './request.js';

/** One requirement of a rule and whether the caller met it: the unit `explain` prints and audit records. */
export interface RequirementOutcome {
  readonly requirement: string;
  readonly met: boolean;
  readonly detail: string;
}

/**
 * Everything known about one check: the decision plus what the response, explain, the span and
 * the audit record need. Produced by the engine and passed on as it is, under these names.
 */
export interface CheckOutcome {
  readonly decision: Decision;
  /** Undefined when the request could not be read. */
  readonly request: RequestView | undefined;
  readonly outcomes: readonly RequirementOutcome[];
  /** The TLS peer, when it was resolved for this check (for headers, metadata and audit). */
  readonly peer?: PeerIdentity | undefined;
  /** Whether the token's verification came from the verified-token cache; undefined when no token was verified. */
  readonly tokenCacheHit?: boolean | undefined;
  /** base64url SHA-256 of a token that failed verification, so an auditor can match it. */
  readonly rejectedTokenHash?: string | undefined;
}

/** Optional hook for child spans around each phase of a decision (telemetry's CheckSpan fits it). */
export interface PhaseTracer {
  /** True when phases become spans; otherwise work that needs no waiting may skip `phase`. */
  readonly recording?: boolean;
  phase<T>(name: 'token.verify' | 'policy.evaluate', fn: () => Promise<T>): Promise<T>;
}
