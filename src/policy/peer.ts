/**
 * Peer (mTLS) requirements of rules: a thin adapter over the mTLS module, which owns peer identity
 * (src/authn/mtls: resolution from the CheckRequest, requirement matching, token binding) and the
 * requirement's schema (src/config/schema-mtls.ts, documented in docs/mtls.md). The policy only
 * decides *when* a peer is needed and turns the helper's results into requirement outcomes.
 */
import {
  checkPeerRequirement,
  checkTokenBinding,
  compilePeerRequirement,
  type CompiledPeerRequirement as MtlsRequirement,
  type PeerResult,
} from '../authn/mtls/index.js';
import type { PeerRequirement } from '../config/schema-mtls.js';
import type { TokenIdentity } from '../core/identity.js';
import type { ReasonCode } from '../core/reasons.js';

export { peerRequirementSchema, type PeerRequirement } from '../config/schema-mtls.js';
export type { PeerIdentity, PeerResolver, PeerResult } from '../authn/mtls/index.js';

/** A rule's peer requirement, compiled once per configuration. */
export interface CompiledPeerRequirement {
  readonly label: string;
  readonly peerOnly: boolean;
  readonly requireBoundToken: boolean;
  readonly mtls: MtlsRequirement;
}

export function compileRulePeer(req: PeerRequirement): CompiledPeerRequirement {
  const compiled = compilePeerRequirement(req);
  // The schema validated every pattern with the same compiler, so this cannot fail after load.
  if (!compiled.ok) throw new Error(`invalid peer requirement: ${compiled.problems.join('; ')}`);
  const m = compiled.requirement;
  const parts = [m.constrainsIdentity ? `peer any of [${m.description}]` : '', m.requireBoundToken ? 'token bound to the peer certificate' : ''].filter((s) => s !== '');
  return {
    label: `${parts.join(', ')}${m.peerOnly ? ' (peer alone authenticates)' : ''}`,
    peerOnly: m.peerOnly,
    requireBoundToken: m.requireBoundToken,
    mtls: m,
  };
}

export type PeerCheck = { readonly met: true; readonly detail: string } | { readonly met: false; readonly reason: ReasonCode; readonly detail: string };

const describe = (r: PeerResult): string =>
  r.ok ? (r.peer === undefined ? 'no peer' : `peer ${r.peer.spiffeId ?? r.peer.principal}`) : `peer unreadable (${r.reason})`;

/**
 * Checks the peer identity, then — when the requirement asks for it — that the token is bound to
 * the peer's certificate. An unreadable peer (malformed certificate, untrusted XFCC, …) fails with
 * the mTLS module's own reason code.
 */
export function checkPeer(req: CompiledPeerRequirement, peer: PeerResult, identity: TokenIdentity | undefined): PeerCheck {
  if (!peer.ok) return { met: false, reason: peer.reason, detail: peer.detail };
  const identityCheck = checkPeerRequirement(req.mtls, peer.peer);
  if (!identityCheck.ok) return { met: false, reason: identityCheck.reason, detail: identityCheck.detail };
  if (req.requireBoundToken) {
    if (identity === undefined) return { met: false, reason: 'token_missing', detail: 'a certificate-bound token is required' };
    const binding = checkTokenBinding(identity, peer.peer, { requireBound: true });
    if (!binding.ok) return { met: false, reason: binding.reason, detail: binding.detail };
    return { met: true, detail: `${describe(peer)}, token bound to its certificate` };
  }
  return { met: true, detail: describe(peer) };
}
