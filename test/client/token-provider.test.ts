import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTokenProvider, credentialTokenSource, TokenAcquisitionError } from '../../src/client/index.js';
import { FakeCredential, ManualClock, flushPromises } from './fakes.js';

const MIN = 60_000;
const SCOPE = 'api://entra-authz-demo/.default';

function setup(options: { refreshMarginMs?: number; retryAfterFailureMs?: number; retryAfterTransientFailureMs?: number; timeoutMs?: number } = {}) {
  const clock = new ManualClock();
  const credential = new FakeCredential();
  const provider = createTokenProvider({ source: credentialTokenSource(credential, { scope: SCOPE }), clock, ...options });
  return { clock, credential, provider };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('token provider', () => {
  it('shares one acquisition among concurrent callers that find no token', async () => {
    const { clock, credential, provider } = setup();
    const calls = Array.from({ length: 20 }, () => provider.getToken());
    await flushPromises();
    expect(credential.calls).toHaveLength(1);
    credential.answer({ token: 'tok-1', expiresOnTimestamp: clock.now() + 60 * MIN });
    expect(new Set(await Promise.all(calls))).toEqual(new Set(['tok-1']));
    expect(credential.scopes).toEqual([SCOPE]);
  });

  it('reuses the cached token until its refresh point without asking again', async () => {
    const { clock, credential, provider } = setup();
    const first = provider.getToken();
    await flushPromises();
    credential.answer({ token: 'tok-1', expiresOnTimestamp: clock.now() + 60 * MIN });
    await first;
    clock.advance(54 * MIN);
    expect(await provider.getToken()).toBe('tok-1');
    expect(credential.calls).toHaveLength(1);
  });

  it('refreshes before expiry in the background while still serving the valid token', async () => {
    const { clock, credential, provider } = setup();
    const first = provider.getToken();
    await flushPromises();
    credential.answer({ token: 'tok-1', expiresOnTimestamp: clock.now() + 60 * MIN });
    await first;

    clock.advance(56 * MIN); // inside the 5-minute refresh window, 4 minutes before expiry
    const during = await Promise.all([provider.getToken(), provider.getToken(), provider.getToken()]);
    expect(during).toEqual(['tok-1', 'tok-1', 'tok-1']);
    expect(credential.calls).toHaveLength(2); // one background refresh, shared

    credential.answer({ token: 'tok-2', expiresOnTimestamp: clock.now() + 60 * MIN });
    await provider.settled();
    expect(await provider.getToken()).toBe('tok-2');
    expect(credential.calls).toHaveLength(2);
  });

  it("refreshes at the credential's refreshAfterTimestamp when it comes first (managed identity tokens)", async () => {
    const { clock, credential, provider } = setup();
    const first = provider.getToken();
    await flushPromises();
    credential.answer({ token: 'mi-1', expiresOnTimestamp: clock.now() + 24 * 60 * MIN, refreshAfterTimestamp: clock.now() + 12 * 60 * MIN });
    await first;
    clock.advance(12 * 60 * MIN - 1);
    await provider.getToken();
    expect(credential.calls).toHaveLength(1);
    clock.advance(1);
    expect(await provider.getToken()).toBe('mi-1');
    expect(credential.calls).toHaveLength(2);
  });

  it('refreshes short-lived tokens at half their lifetime', async () => {
    const { clock, credential, provider } = setup();
    const first = provider.getToken();
    await flushPromises();
    credential.answer({ token: 'short', expiresOnTimestamp: clock.now() + 4 * MIN });
    await first;
    clock.advance(2 * MIN - 1);
    await provider.getToken();
    expect(credential.calls).toHaveLength(1);
    clock.advance(1);
    await provider.getToken();
    expect(credential.calls).toHaveLength(2);
  });

  it('never hands out a token about to expire: callers wait for the new one', async () => {
    const { clock, credential, provider } = setup();
    const first = provider.getToken();
    await flushPromises();
    credential.answer({ token: 'tok-1', expiresOnTimestamp: clock.now() + 60 * MIN });
    await first;
    clock.advance(60 * MIN - 10_000); // 10 s left: less than the 30 s expiry margin
    const waiting = provider.getToken();
    await flushPromises();
    expect(credential.calls).toHaveLength(2);
    credential.answer({ token: 'tok-2', expiresOnTimestamp: clock.now() + 60 * MIN });
    expect(await waiting).toBe('tok-2');
  });

  it('keeps serving the valid token when a background refresh fails, and retries after the back-off', async () => {
    const { clock, credential, provider } = setup({ retryAfterFailureMs: 10_000 });
    const first = provider.getToken();
    await flushPromises();
    credential.answer({ token: 'tok-1', expiresOnTimestamp: clock.now() + 60 * MIN });
    await first;
    clock.advance(56 * MIN);
    expect(await provider.getToken()).toBe('tok-1');
    credential.fail(new Error('network down'));
    await provider.settled();

    expect(await provider.getToken()).toBe('tok-1');
    expect(credential.calls).toHaveLength(2); // within the back-off: no new attempt
    clock.advance(10_000);
    expect(await provider.getToken()).toBe('tok-1');
    expect(credential.calls).toHaveLength(3);
  });

  it('rejects with TokenAcquisitionError (UNAUTHENTICATED) and fails fast during the back-off', async () => {
    const { clock, credential, provider } = setup({ retryAfterFailureMs: 5_000 });
    const first = provider.getToken();
    await flushPromises();
    credential.fail(Object.assign(new Error('AADSTS700016: application not found'), { name: 'AuthenticationError' }));
    const err = await first.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenAcquisitionError);
    expect((err as TokenAcquisitionError).code).toBe(16);
    expect((err as TokenAcquisitionError).reasonName).toBe('AuthenticationError');
    expect((err as Error).message).toContain('AADSTS700016');
    expect((err as Error).message).toContain(`scope ${SCOPE}`);

    await expect(provider.getToken()).rejects.toBe(err);
    expect(credential.calls).toHaveLength(1);
    clock.advance(5_000);
    const retry = provider.getToken();
    await flushPromises();
    expect(credential.calls).toHaveLength(2);
    credential.answer({ token: 'tok-ok', expiresOnTimestamp: clock.now() + 60 * MIN });
    expect(await retry).toBe('tok-ok');
  });

  it('rejects a transient failure with UNAVAILABLE and tries again after the shorter transient back-off', async () => {
    const { clock, credential, provider } = setup({ retryAfterFailureMs: 5_000, retryAfterTransientFailureMs: 1_000 });
    const first = provider.getToken().catch((e: unknown) => e);
    await flushPromises();
    credential.fail(Object.assign(new Error('Service Unavailable'), { name: 'AuthenticationError', statusCode: 503 }));
    const err = (await first) as TokenAcquisitionError;
    expect(err.transient).toBe(true);
    expect(err.code).toBe(14);
    await expect(provider.getToken()).rejects.toBe(err);
    clock.advance(1_000);
    const retry = provider.getToken();
    await flushPromises();
    expect(credential.calls).toHaveLength(2);
    credential.answer({ token: 'tok-after-outage', expiresOnTimestamp: clock.now() + 60 * MIN });
    expect(await retry).toBe('tok-after-outage');
  });

  it('tells transient failures (network, timeout, 429/5xx) from refusals (missing identity, 4xx)', async () => {
    const outcomes: [string, Error, boolean][] = [
      ['connection refused inside fetch', Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) }), true],
      ['DNS lookup to retry', Object.assign(new Error('getaddrinfo EAI_AGAIN login.microsoftonline.com'), { code: 'EAI_AGAIN' }), true],
      ['throttled', Object.assign(new Error('Too Many Requests'), { name: 'AuthenticationError', statusCode: 429 }), true],
      ['aborted', Object.assign(new Error('The operation was aborted'), { name: 'AbortError' }), true],
      ['no managed identity here', Object.assign(new Error('ManagedIdentityCredential: no endpoint'), { name: 'CredentialUnavailableError' }), false],
      ['bad secret', Object.assign(new Error('AADSTS7000215'), { name: 'AuthenticationError', statusCode: 401 }), false],
      ['programming error', new RangeError('nope'), false],
    ];
    for (const [what, error, transient] of outcomes) {
      const { credential, provider } = setup();
      const pending = provider.getToken().catch((e: unknown) => e);
      await flushPromises();
      credential.fail(error);
      const err = (await pending) as TokenAcquisitionError;
      expect(err.transient, what).toBe(transient);
      expect(err.code, what).toBe(transient ? 14 : 16);
    }
  });

  it('scrubs secrets and token-shaped strings from error messages', async () => {
    const clock = new ManualClock();
    const secret = 's3cr3t+value/with=chars';
    const provider = createTokenProvider({
      clock,
      source: {
        description: 'test source',
        secrets: [secret],
        fetchToken: () =>
          Promise.reject(
            new Error(`bad request: client_secret=${encodeURIComponent(secret)} raw=${secret} echo=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln`),
          ),
      },
    });
    const err = (await provider.getToken().catch((e: unknown) => e)) as Error;
    expect(err.message).not.toContain(secret);
    expect(err.message).not.toContain(encodeURIComponent(secret));
    expect(err.message).not.toContain('eyJhbGciOiJSUzI1NiJ9');
    expect(err.message).toContain('[redacted]');
    expect(err).not.toHaveProperty('cause');
  });

  it('gives up on a source that does not answer within the timeout', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { credential, provider } = setup({ timeoutMs: 2_000 });
    const pending = provider.getToken().catch((e: unknown) => e);
    await flushPromises();
    expect(credential.calls[0]?.options?.abortSignal?.aborted).toBe(false);
    vi.advanceTimersByTime(2_000);
    const err = (await pending) as TokenAcquisitionError;
    expect(err).toBeInstanceOf(TokenAcquisitionError);
    expect(err.message).toContain('timed out after 2000 ms');
    expect(err.code).toBe(14); // UNAVAILABLE: a retry may find the source answering
    expect(credential.calls[0]?.options?.abortSignal?.aborted).toBe(true);
  });

  it('rejects a credential that returns null or an already expired token', async () => {
    const { clock, credential, provider } = setup({ retryAfterFailureMs: 0 });
    const a = provider.getToken().catch((e: unknown) => e);
    await flushPromises();
    credential.answer(null);
    expect(((await a) as Error).message).toContain('returned no token');
    const b = provider.getToken().catch((e: unknown) => e);
    await flushPromises();
    credential.answer({ token: 'old', expiresOnTimestamp: clock.now() - 1 });
    expect(((await b) as Error).message).toContain('already expired');
  });

  it('acquires a new token after invalidate()', async () => {
    const { clock, credential, provider } = setup();
    const first = provider.getToken();
    await flushPromises();
    credential.answer({ token: 'tok-1', expiresOnTimestamp: clock.now() + 60 * MIN });
    await first;
    provider.invalidate();
    const second = provider.getToken();
    await flushPromises();
    credential.answer({ token: 'tok-2', expiresOnTimestamp: clock.now() + 60 * MIN });
    expect(await second).toBe('tok-2');
  });
});
