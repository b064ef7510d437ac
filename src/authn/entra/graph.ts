/**
 * Group membership from Microsoft Graph, for tokens with group overage (too many groups for the
 * token to carry). Asks only about the group ids a rule names, with `checkMemberGroups`
 * (transitive), on `/users/{oid}` or, for app tokens, `/servicePrincipals/{oid}`. The URL is built
 * from the configured Graph endpoint, never taken from the token's `_claim_sources`, which names
 * the retired Azure AD Graph.
 *
 * Bounded everywhere: answers are cached per (tenant, object id) for a TTL in an LRU of fixed
 * size, concurrent misses for the same caller share one call, each call has its own timer, and a
 * 429 from Graph stops all calls for that tenant until its `Retry-After` has passed.
 */
import { LRUCache } from 'lru-cache';
import type { TokenIdentity } from '../../core/identity.js';

export interface GroupResolverSettings {
  /** Graph base URL, e.g. `https://graph.microsoft.com` (no trailing slash). */
  readonly endpoint: string;
  readonly timeoutMs: number;
  readonly cacheMaxEntries: number;
  readonly cacheTtlSeconds: number;
}

export interface GroupResolverDeps {
  readonly settings: GroupResolverSettings;
  /** An app-only access token for Graph in this tenant (the server's own credentials). */
  readonly graphToken: (tenant: string) => Promise<string>;
  readonly fetch: typeof globalThis.fetch;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /** Called once per lookup that needs group answers, with how it was answered (for metrics). */
  readonly onLookup?: (result: GraphLookupResult) => void;
}

/**
 * `hit`: answered from the cache, no Graph call. `miss`: answered by Graph (or by a call already
 * in flight). `throttled`: refused because Graph answered 429 (now or within its `Retry-After`).
 * `failed`: any other failure (no credential, timeout, error status, bad answer).
 */
export type GraphLookupResult = 'hit' | 'miss' | 'throttled' | 'failed';

export type MembershipResult = { readonly ok: true; readonly memberOf: ReadonlySet<string> } | { readonly ok: false; readonly detail: string };

export interface GroupResolver {
  /** Which of `groupIds` (lower-case) the caller is a member of, directly or transitively. Never throws. */
  memberOf(identity: Pick<TokenIdentity, 'tid' | 'oid' | 'type'>, groupIds: readonly string[]): Promise<MembershipResult>;
}

/** Graph takes at most 20 ids per checkMemberGroups call. */
const IDS_PER_CALL = 20;
/** Without a usable `Retry-After`, a 429 pauses calls for this long. */
const DEFAULT_RETRY_AFTER_SECONDS = 30;
/** A longer `Retry-After` is capped: membership lookups resume at the latest after this. */
const MAX_RETRY_AFTER_SECONDS = 300;

class GraphFailure extends Error {
  constructor(
    message: string,
    readonly throttled = false,
  ) {
    super(message);
  }
}

interface CacheEntry {
  /** Known answers: group id → member or not. */
  readonly answers: ReadonlyMap<string, boolean>;
  readonly until: number;
}

function retryAfterSeconds(header: string | null): number {
  const seconds = header === null ? NaN : Number(header.trim());
  if (!Number.isFinite(seconds) || seconds < 0) return DEFAULT_RETRY_AFTER_SECONDS;
  return Math.min(Math.ceil(seconds), MAX_RETRY_AFTER_SECONDS);
}

export function createGroupResolver(deps: GroupResolverDeps): GroupResolver {
  const { settings, now } = deps;
  const cache = new LRUCache<string, CacheEntry>({ max: Math.max(1, settings.cacheMaxEntries) });
  const inFlight = new Map<string, Promise<ReadonlyMap<string, boolean>>>();
  /** Per tenant: no Graph call before this instant (ms), after a 429. */
  const throttledUntil = new Map<string, number>();

  async function checkMemberGroups(identity: Pick<TokenIdentity, 'tid' | 'oid' | 'type'>, ids: readonly string[]): Promise<ReadonlySet<string>> {
    const collection = identity.type === 'app' ? 'servicePrincipals' : 'users';
    const url = `${settings.endpoint}/v1.0/${collection}/${encodeURIComponent(identity.oid)}/checkMemberGroups`;
    let token: string;
    try {
      token = await deps.graphToken(identity.tid);
    } catch (err) {
      // The error's name only: credential libraries may quote configuration in their messages.
      throw new GraphFailure(`no Graph access token (${err instanceof Error ? err.name : 'error'})`);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), settings.timeoutMs);
    try {
      const res = await deps.fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ groupIds: ids }),
        signal: controller.signal,
        redirect: 'error',
      });
      if (res.status === 429) {
        const wait = retryAfterSeconds(res.headers.get('retry-after'));
        throttledUntil.set(identity.tid, now() + wait * 1000);
        throw new GraphFailure(`Graph throttled the lookup (429), pausing ${wait}s`, true);
      }
      if (!res.ok) throw new GraphFailure(`Graph answered ${res.status}`);
      const body: unknown = await res.json();
      const value = typeof body === 'object' && body !== null ? (body as { value?: unknown }).value : undefined;
      if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) throw new GraphFailure('Graph answer has no list of group ids');
      return new Set(value.map((v) => v.toLowerCase()));
    } catch (err) {
      if (err instanceof GraphFailure) throw err;
      throw new GraphFailure(controller.signal.aborted ? `Graph did not answer within ${settings.timeoutMs} ms` : `Graph call failed: ${err instanceof Error ? err.name : 'error'}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Asks Graph about `ids` (chunked) and returns an answer for each. */
  async function lookup(identity: Pick<TokenIdentity, 'tid' | 'oid' | 'type'>, ids: readonly string[]): Promise<ReadonlyMap<string, boolean>> {
    const answers = new Map<string, boolean>();
    for (let i = 0; i < ids.length; i += IDS_PER_CALL) {
      const chunk = ids.slice(i, i + IDS_PER_CALL);
      const members = await checkMemberGroups(identity, chunk);
      for (const id of chunk) answers.set(id, members.has(id));
    }
    return answers;
  }

  const report = (result: GraphLookupResult): void => {
    try {
      deps.onLookup?.(result);
    } catch {
      // Metrics never change a membership answer.
    }
  };

  return {
    async memberOf(identity, groupIds) {
      try {
        const key = `${identity.tid}:${identity.oid}`;
        const t = now();
        const cached = cache.get(key);
        const known = cached !== undefined && t < cached.until ? cached.answers : new Map<string, boolean>();
        const missing = [...new Set(groupIds)].filter((id) => !known.has(id)).sort();
        let answers = known;
        if (missing.length > 0) {
          const pausedUntil = throttledUntil.get(identity.tid) ?? 0;
          if (t < pausedUntil) {
            report('throttled');
            return { ok: false, detail: `Graph throttled lookups in tenant ${identity.tid} for ${Math.ceil((pausedUntil - t) / 1000)}s more` };
          }
          const flightKey = `${key}:${missing.join(',')}`;
          let flight = inFlight.get(flightKey);
          if (flight === undefined) {
            flight = lookup(identity, missing).finally(() => inFlight.delete(flightKey));
            inFlight.set(flightKey, flight);
          }
          const fresh = await flight;
          answers = new Map([...known, ...fresh]);
          // The entry keeps the deadline of its first answers: membership is re-read at least every TTL.
          cache.set(key, { answers, until: cached !== undefined && t < cached.until ? cached.until : t + settings.cacheTtlSeconds * 1000 });
        }
        report(missing.length > 0 ? 'miss' : 'hit');
        return { ok: true, memberOf: new Set(groupIds.filter((id) => answers.get(id) === true)) };
      } catch (err) {
        report(err instanceof GraphFailure && err.throttled ? 'throttled' : 'failed');
        return { ok: false, detail: err instanceof GraphFailure ? err.message : `group lookup failed: ${err instanceof Error ? err.name : 'error'}` };
      }
    },
  };
}
