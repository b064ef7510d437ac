import type { Parameters } from 'fast-check';

/**
 * Every property runs a bounded number of cases and stops early past a time budget, so the fuzz
 * suite stays a few seconds of `npm test` on a loaded machine. A failure prints its seed and path:
 * rerun with `{ seed, path }` to reproduce it.
 */
export const FUZZ: Parameters<unknown> = { numRuns: 500, interruptAfterTimeLimit: 1000 };
