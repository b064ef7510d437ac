import type { ReasonCode } from '../../core/reasons.js';

export type { PeerIdentity } from '../../core/identity.js';

/** A refusal with a stable reason code and an audit-only detail (never sent to the caller). */
export interface MtlsFailure {
  readonly ok: false;
  readonly reason: ReasonCode;
  readonly detail: string;
}

export const fail = (reason: ReasonCode, detail: string): MtlsFailure => ({ ok: false, reason, detail });
