/** Small helpers for untyped input and frozen data, shared by every module that reads either. */

/** A non-null, non-array object: what a decoded message or JSON document section must be before it is read. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Freezes `value` and everything reachable from it, so shared configuration cannot be changed by a caller. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** One frozen empty list, shared by every record that has nothing to list. */
export const NO_STRINGS: readonly string[] = Object.freeze([]);

/**
 * A pool of strings that hands back one shared copy of each equal value, so long-lived records
 * that repeat a value (the same tenant, client or role in thousands of cached identities) hold it
 * once instead of once per record. Holds at most `maxEntries` values and starts over when full.
 */
export function createStringPool(maxEntries: number): (value: string) => string {
  const pool = new Map<string, string>();
  return (value) => {
    const known = pool.get(value);
    if (known !== undefined) return known;
    if (pool.size >= maxEntries) pool.clear();
    pool.set(value, value);
    return value;
  };
}
