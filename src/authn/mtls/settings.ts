/**
 * Turns the validated `peer` configuration into ready-to-use, frozen settings: the CA bundle parsed
 * once at load (the composition root reads the file), the XFCC proxy list as a set, the input caps.
 */
import { ConfigError } from '../../config/errors.js';
import type { PeerSourceConfig } from '../../config/schema-mtls.js';
import { DEFAULT_CERTIFICATE_LIMITS, parseTrustAnchors, type CertificateLimits, type TrustAnchor } from './certificate.js';
import { DEFAULT_XFCC_LIMITS, type XfccLimits, type XfccTrust } from './xfcc.js';

export interface PeerSettings {
  /** CA certificates a peer certificate must be issued by; empty = no CA verification. */
  readonly anchors: readonly TrustAnchor[];
  readonly xfcc: XfccTrust;
  readonly certificateLimits: CertificateLimits;
  readonly xfccLimits: XfccLimits;
}

/** Settings with no CA bundle and XFCC ignored: identity from Envoy's principal / certificate only. */
export const DEFAULT_PEER_SETTINGS: PeerSettings = Object.freeze({
  anchors: Object.freeze([]) as readonly TrustAnchor[],
  xfcc: Object.freeze({ trusted: false, proxies: new Set<string>() as ReadonlySet<string> }),
  certificateLimits: DEFAULT_CERTIFICATE_LIMITS,
  xfccLimits: DEFAULT_XFCC_LIMITS,
});

/**
 * Builds settings from configuration and the CA bundle's text (when `caBundleFile` is set).
 * Throws ConfigError listing every problem, located under `path`.
 */
export function buildPeerSettings(config: PeerSourceConfig, caBundlePem: string | undefined, path = 'peer', source = 'config'): PeerSettings {
  let anchors: readonly TrustAnchor[] = [];
  if (config.caBundleFile !== undefined) {
    if (caBundlePem === undefined) throw new ConfigError(source, [{ path: `${path}.caBundleFile`, message: 'the bundle was not read' }]);
    const parsed = parseTrustAnchors(caBundlePem);
    if (!parsed.ok) {
      throw new ConfigError(
        source,
        parsed.problems.map((message) => ({ path: `${path}.caBundleFile`, message: `${config.caBundleFile}: ${message}` })),
      );
    }
    anchors = Object.freeze([...parsed.anchors]);
  }
  return Object.freeze({
    anchors,
    xfcc: Object.freeze({ trusted: config.xfcc.trusted, proxies: new Set(config.xfcc.proxies) as ReadonlySet<string> }),
    certificateLimits: DEFAULT_CERTIFICATE_LIMITS,
    xfccLimits: DEFAULT_XFCC_LIMITS,
  });
}
