import { TokenAcquisitionError, describeError, isTransientError, redact } from './errors.js';

/** Milliseconds since the epoch; injected so tests control time without sleeping. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** An access token and when it stops being usable. */
export interface AccessTokenInfo {
  readonly token: string;
  /** Expiry, ms since the epoch. */
  readonly expiresAt: number;
  /** When the issuer suggests refreshing (e.g. @azure/identity's `refreshAfterTimestamp`), ms since the epoch. */
  readonly refreshAt?: number;
}

/** Where tokens come from: an @azure/identity credential, a client-credentials endpoint, a test fake. */
export interface TokenSource {
  /** Secret-free words for error messages, e.g. `client credentials for <client id> at <endpoint>`. */
  readonly description: string;
  /** Strings that must never appear in an error message (client secrets). */
  readonly secrets?: readonly string[];
  /** Fetches a new token. Must honour `signal`. */
  fetchToken(signal: AbortSignal): Promise<AccessTokenInfo>;
}

export interface TokenProviderOptions {
  readonly source: TokenSource;
  readonly clock?: Clock;
  /** Refresh this long before expiry (capped at half the token's lifetime). Default 5 min. */
  readonly refreshMarginMs?: number;
  /**
   * A token this close to expiry is not sent at all: clock skew and request latency would make it
   * arrive expired. Default 30 s.
   */
  readonly expiryMarginMs?: number;
  /** After a failed acquisition, calls fail fast with the same error for this long. Default 5 s. */
  readonly retryAfterFailureMs?: number;
  /**
   * The same, after a transient failure (timeout, network, 408/429/5xx). Shorter, so that a
   * channel retry policy's later attempts can reach the token endpoint again. Default 1 s.
   */
  readonly retryAfterTransientFailureMs?: number;
  /** Longest one acquisition may take. Default 10 s. */
  readonly timeoutMs?: number;
  /** More strings never to show in errors, on top of the source's own `secrets`. */
  readonly redact?: readonly string[];
}

/**
 * Hands out a current access token, held in memory only.
 *
 * - A token is reused until its refresh point; past that, the first caller starts one background
 *   refresh and every caller keeps getting the still-valid token, so no call waits on Entra.
 * - With no usable token, callers wait for one acquisition that all of them share.
 * - A failure is remembered for `retryAfterFailureMs` (`retryAfterTransientFailureMs` when
 *   transient), so a broken credential is not hammered by every call; a valid cached token keeps
 *   being served while background refreshes fail.
 */
export interface TokenProvider {
  /** Resolves to a bearer token, or rejects with a {@link TokenAcquisitionError}. */
  getToken(): Promise<string>;
  /** Resolves once no acquisition is in flight (its outcome is not reported here). */
  settled(): Promise<void>;
  /** Forgets the cached token, e.g. after the server rejected it as `invalid_token`. */
  invalidate(): void;
}

interface Cached {
  readonly info: AccessTokenInfo;
  readonly refreshAt: number;
}

export function createTokenProvider(options: TokenProviderOptions): TokenProvider {
  const { source } = options;
  const clock = options.clock ?? systemClock;
  const refreshMarginMs = options.refreshMarginMs ?? 5 * 60_000;
  const expiryMarginMs = options.expiryMarginMs ?? 30_000;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 5_000;
  const retryAfterTransientFailureMs = options.retryAfterTransientFailureMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const secrets = [...(source.secrets ?? []), ...(options.redact ?? [])];

  let cached: Cached | undefined;
  let inflight: Promise<AccessTokenInfo> | undefined;
  let lastFailure: { at: number; error: TokenAcquisitionError } | undefined;

  const fail = (reason: string, name: string, transient = false): TokenAcquisitionError =>
    new TokenAcquisitionError(source.description, redact(reason, secrets), name, transient);

  async function acquire(): Promise<AccessTokenInfo> {
    const startedAt = clock.now();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    timer.unref?.();
    try {
      const fetched = source.fetchToken(controller.signal);
      const timedOut = new Promise<never>((_, reject) => {
        controller.signal.addEventListener('abort', () => reject(fail(`timed out after ${timeoutMs} ms`, 'TimeoutError', true)), {
          once: true,
        });
      });
      const info = await Promise.race([fetched, timedOut]);
      if (typeof info?.token !== 'string' || info.token.length === 0) {
        throw fail('the token source returned no token', 'TypeError');
      }
      if (!Number.isFinite(info.expiresAt) || info.expiresAt <= clock.now() + expiryMarginMs) {
        throw fail('the token source returned a token that is already expired', 'RangeError');
      }
      const lifetime = info.expiresAt - startedAt;
      const byMargin = info.expiresAt - Math.min(refreshMarginMs, lifetime / 2);
      const hinted = info.refreshAt !== undefined && Number.isFinite(info.refreshAt) ? info.refreshAt : Infinity;
      cached = { info, refreshAt: Math.min(byMargin, hinted) };
      lastFailure = undefined;
      return info;
    } catch (err) {
      // Every message is scrubbed here, whoever built it: sources may quote what an endpoint said.
      const error =
        err instanceof TokenAcquisitionError
          ? fail(err.reason, err.reasonName, err.transient)
          : (() => {
              const { name, message } = describeError(err);
              return fail(message, name, isTransientError(err));
            })();
      lastFailure = { at: clock.now(), error };
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  function start(): Promise<AccessTokenInfo> {
    if (inflight) return inflight;
    const p = acquire().finally(() => {
      if (inflight === p) inflight = undefined;
    });
    inflight = p;
    return p;
  }

  const inBackoff = (now: number): boolean =>
    lastFailure !== undefined && now < lastFailure.at + (lastFailure.error.transient ? retryAfterTransientFailureMs : retryAfterFailureMs);

  return {
    async getToken(): Promise<string> {
      const now = clock.now();
      if (cached && now < cached.info.expiresAt - expiryMarginMs) {
        if (now >= cached.refreshAt && !inflight && !inBackoff(now)) {
          // Background refresh: its failure is remembered in lastFailure, the cached token stays.
          start().catch(() => undefined);
        }
        return cached.info.token;
      }
      cached = undefined;
      if (inflight) return (await inflight).token;
      if (lastFailure && inBackoff(now)) throw lastFailure.error;
      return (await start()).token;
    },
    async settled(): Promise<void> {
      await inflight?.catch(() => undefined);
    },
    invalidate(): void {
      cached = undefined;
    },
  };
}
