/**
 * What a rule requires of the peer: compiled once at load from the validated configuration, then
 * checked per request. Pure, never throws.
 */
import type { PeerRequirement } from '../../config/schema-mtls.js';
import { compileDnsPattern, compileSpiffePattern, spiffeMatches, type SpiffeMatcher } from './spiffe.js';
import { fail, type MtlsFailure, type PeerIdentity } from './types.js';

export interface CompiledPeerRequirement {
  /** The peer identity alone authenticates the caller; no token is needed. */
  readonly peerOnly: boolean;
  /** Only certificate-bound tokens are accepted (checked by checkTokenBinding). */
  readonly requireBoundToken: boolean;
  /** Whether any identity list was given (otherwise any peer, or none, satisfies it). */
  readonly constrainsIdentity: boolean;
  /** Human-readable summary for audit details. */
  readonly description: string;
  readonly spiffeIds: ReadonlySet<string>;
  readonly spiffePatterns: readonly SpiffeMatcher[];
  readonly dnsSans: readonly ((name: string) => boolean)[];
}

export type CompileRequirementResult = { readonly ok: true; readonly requirement: CompiledPeerRequirement } | { readonly ok: false; readonly problems: string[] };

/**
 * Compiles a requirement. The schema has already refused bad patterns, so this only fails when
 * handed unvalidated input; the integrator compiles each rule's requirement at config load.
 */
export function compilePeerRequirement(req: PeerRequirement): CompileRequirementResult {
  const problems: string[] = [];
  const spiffePatterns: SpiffeMatcher[] = [];
  for (const p of req.spiffePatterns ?? []) {
    const c = compileSpiffePattern(p);
    if (c.ok) spiffePatterns.push(c.value);
    else problems.push(`spiffePatterns: ${p}: ${c.problem}`);
  }
  const dnsSans: ((name: string) => boolean)[] = [];
  for (const p of req.dnsSans ?? []) {
    const c = compileDnsPattern(p);
    if (c.ok) dnsSans.push(c.value);
    else problems.push(`dnsSans: ${p}: ${c.problem}`);
  }
  if (problems.length > 0) return { ok: false, problems };
  const constrainsIdentity = req.spiffeIds !== undefined || req.spiffePatterns !== undefined || req.dnsSans !== undefined;
  const parts = [
    ...(req.spiffeIds ?? []).map((s) => `spiffe ${s}`),
    ...(req.spiffePatterns ?? []).map((s) => `pattern ${s}`),
    ...(req.dnsSans ?? []).map((s) => `dns ${s}`),
  ];
  return {
    ok: true,
    requirement: Object.freeze({
      peerOnly: req.peerOnly,
      requireBoundToken: req.requireBoundToken,
      constrainsIdentity,
      description: parts.length > 6 ? `${parts.slice(0, 6).join(', ')}, … (${parts.length})` : parts.join(', '),
      spiffeIds: new Set(req.spiffeIds ?? []),
      spiffePatterns: Object.freeze(spiffePatterns),
      dnsSans: Object.freeze(dnsSans),
    }),
  };
}

/**
 * Checks the peer against a compiled requirement: any listed SPIFFE ID, SPIFFE pattern or DNS SAN
 * satisfies it. A requirement without identity lists is satisfied by any peer or none.
 */
export function checkPeerRequirement(req: CompiledPeerRequirement, peer: PeerIdentity | undefined): { ok: true } | MtlsFailure {
  if (!req.constrainsIdentity) return { ok: true };
  if (peer === undefined) return fail('peer_missing', `no peer identity; the rule requires ${req.description}`);
  if (peer.spiffeId !== undefined && req.spiffeIds.has(peer.spiffeId)) return { ok: true };
  for (const match of req.spiffePatterns) if (spiffeMatches(peer.spiffeId, match)) return { ok: true };
  for (const match of req.dnsSans) if (peer.dnsSans.some(match)) return { ok: true };
  return fail('peer_not_allowed', `peer ${JSON.stringify(peer.principal.slice(0, 256))} matches none of: ${req.description}`);
}
