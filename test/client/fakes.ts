import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import type { Clock } from '../../src/client/index.js';

/** A clock the test moves by hand. */
export class ManualClock implements Clock {
  constructor(private ms = Date.UTC(2025, 0, 1, 12, 0, 0)) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

interface Pending {
  resolve(token: AccessToken | null): void;
  reject(err: unknown): void;
  options: GetTokenOptions | undefined;
}

/**
 * A TokenCredential whose getToken calls stay pending until the test answers them, so a test can
 * see exactly how many acquisitions were started and in which order they finish.
 */
export class FakeCredential implements TokenCredential {
  readonly calls: Pending[] = [];
  readonly scopes: (string | string[])[] = [];

  getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    this.scopes.push(scopes);
    return new Promise((resolve, reject) => this.calls.push({ resolve, reject, options }));
  }

  /** Answers the oldest unanswered call. */
  answer(token: AccessToken | null): void {
    const call = this.calls.find((c) => !(c as { done?: boolean }).done);
    if (!call) throw new Error('no pending getToken call');
    (call as { done?: boolean }).done = true;
    call.resolve(token);
  }

  fail(err: unknown): void {
    const call = this.calls.find((c) => !(c as { done?: boolean }).done);
    if (!call) throw new Error('no pending getToken call');
    (call as { done?: boolean }).done = true;
    call.reject(err);
  }
}

/** Lets every already-queued promise callback run. */
export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}
