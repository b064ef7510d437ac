/**
 * A sliding one-minute budget of JWKS fetches for one key store (every tenant and version
 * together). Refreshes on an unknown `kid` must fit in it, so that no configuration — many tenants,
 * a short cooldown — lets made-up key ids turn into a stream of outbound requests.
 */
const WINDOW_MS = 60_000;

export interface FetchBudget {
  /** Takes one fetch from the budget if any is left. */
  tryTake(): boolean;
  /** Counts a fetch that runs whatever the budget (initial and scheduled loads). */
  record(): void;
}

export function createFetchBudget(perMinute: number, now: () => number): FetchBudget {
  const taken: number[] = [];
  const prune = (): void => {
    const since = now() - WINDOW_MS;
    while (taken.length > 0 && (taken[0] ?? 0) <= since) taken.shift();
  };
  return {
    tryTake() {
      prune();
      if (taken.length >= perMinute) return false;
      taken.push(now());
      return true;
    },
    record() {
      prune();
      taken.push(now());
    },
  };
}
