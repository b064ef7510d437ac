import { LRUCache } from 'lru-cache';
import type { TokenIdentity } from '../core/identity.js';
import { tokenHash } from '../core/token-hash.js';
import type { TokenVerifier, VerifyResult } from '../core/verifier.js';

export interface TokenCacheSettings {
  /** Most verified tokens kept; 0 turns the cache off. */
  readonly maxEntries: number;
  /** Longest a verification is reused; never past the token's own `exp`. */
  readonly ttlSeconds: number;
  /** Allowed clock skew, as in verification: a cached token expires at `exp + skew`. */
  readonly clockSkewSeconds: number;
}

/**
 * Reuses successful verifications of the same token (callers send one token for its whole
 * lifetime), keyed by the token's SHA-256 so the cache holds no token. Only successes are kept;
 * expiry is re-checked against the clock on every hit, and the cache belongs to one configuration
 * (a reload starts a new one), so a changed audience or tenant list never serves a stale answer.
 *
 * Checks that arrive together with the same new token (a client's burst, or every worker of a
 * caller right after it renewed its token) share one verification instead of each running its own.
 */
export function createCachingVerifier(inner: TokenVerifier, settings: TokenCacheSettings, now: () => number): TokenVerifier {
  if (settings.maxEntries === 0) return inner;
  // Each entry carries its deadline: exp + skew, capped by the TTL when it was stored.
  const cache = new LRUCache<string, { readonly identity: TokenIdentity; readonly until: number }>({ max: settings.maxEntries });
  const skewMs = settings.clockSkewSeconds * 1000;
  /** Verifications under way, by token hash; an entry lives only until its verification ends. */
  const inFlight = new Map<string, Promise<VerifyResult>>();

  const verifyOnce = (key: string, token: string, t: number): Promise<VerifyResult> => {
    let pending = inFlight.get(key);
    if (pending !== undefined) return pending;
    pending = Promise.resolve(inner.verify(token)).then((result) => {
      if (result.ok) {
        const until = Math.min(t + settings.ttlSeconds * 1000, result.identity.expiresAt * 1000 + skewMs);
        cache.set(key, { identity: result.identity, until });
      }
      return result;
    });
    inFlight.set(key, pending);
    const settled = (): void => void inFlight.delete(key);
    pending.then(settled, settled);
    return pending;
  };

  /** A held verification of the token under `key` at time `t`; an expired one is forgotten. */
  const held = (key: string, t: number): VerifyResult | undefined => {
    const hit = cache.get(key);
    if (hit !== undefined && t <= hit.until) return { ok: true, identity: hit.identity, cacheHit: true };
    if (hit !== undefined) cache.delete(key);
    return undefined;
  };

  return {
    verify(token) {
      const key = tokenHash(token);
      const t = now();
      // A hit is answered at once: the check needs no promise, nor a later tick.
      return held(key, t) ?? verifyOnce(key, token, t).then((result) => ({ ...result, cacheHit: false }));
    },
  };
}
