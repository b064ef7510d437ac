/**
 * Public surface of the mTLS authentication module (see docs/mtls.md). Import from here; the
 * individual files are implementation detail.
 */
export type { PeerIdentity, MtlsFailure } from './types.js';
export { resolvePeer, createPeerResolver, peerMetadata, type PeerResolver, type PeerResult } from './peer.js';
export { buildPeerSettings, DEFAULT_PEER_SETTINGS, type PeerSettings } from './settings.js';
export {
  compilePeerRequirement,
  checkPeerRequirement,
  type CompiledPeerRequirement,
  type CompileRequirementResult,
} from './requirements.js';
export {
  checkTokenBinding,
  type BindingOptions,
  type BindingResult,
} from './binding.js';
export { XFCC_HEADER } from './xfcc.js';
