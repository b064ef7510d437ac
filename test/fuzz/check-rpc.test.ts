import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { DEMO } from '../../src/dev/emulator.js';
import { loadAuthorizationService } from '../../src/server/protos.js';
import { allowance, startHarness, type CheckResult, type Harness } from '../support/harness.js';

/**
 * Mutated CheckRequests against the real server over gRPC: whatever arrives, the RPC answers
 * (only an oversize message may fail, with RESOURCE_EXHAUSTED), the server keeps serving, and
 * nothing is allowed unless it carries the one valid token intact.
 */
describe('fuzzed CheckRequests over real gRPC', () => {
  let h: Harness;
  let token: string;
  const service = loadAuthorizationService()['Check']!;
  const encode = (request: unknown): Buffer => service.requestSerialize(request);

  beforeAll(async () => {
    h = await startHarness({
      rules: [
        { name: 'admin', match: { paths: [{ prefix: '/admin' }] }, require: { roles: { anyOf: ['Orders.Admin'] } } },
        { name: 'orders', match: { paths: [{ prefix: '/orders' }] }, require: { roles: { anyOf: ['Orders.Read'] } } },
      ],
    });
    await h.waitServing();
    token = await h.emulator.issueToken({ appId: DEMO.clients.reader.clientId });
  });
  afterAll(() => h.close());

  /** The invariants every answer must keep; `carriesToken` says whether the valid token is intact in what was sent. */
  const checkAnswer = (result: CheckResult, carriesToken: boolean, oversize = false): void => {
    if (result.kind === 'error') {
      expect(oversize ? result.code : `RPC error ${result.code} ${result.details}`).toBe(status.RESOURCE_EXHAUSTED);
      return;
    }
    const allowed = result.response.ok_response !== undefined && !result.response.status?.code;
    if (allowed) expect(carriesToken).toBe(true);
  };

  const ALPHABET = ['/', 'orders', 'admin', '%2e', '%2F', '%41', '..', '.', ';', '\\', '?', '#', 'a', '%', '\u0000', '\u00ff', ' ', ','];
  const pathish = fc.array(fc.constantFrom(...ALPHABET), { maxLength: 12 }).map((p) => p.join(''));
  const mutateToken = (t: string, at: number, c: string): string => {
    const i = at % t.length;
    return t.slice(0, i) + c + t.slice(i + 1);
  };

  it('answers structurally mutated requests without an RPC error and allows only the valid token', async () => {
    const authorization = fc.oneof(
      fc.constant(undefined),
      fc.constant('valid'),
      fc.tuple(fc.nat(), fc.constantFrom('A', '_', '-', '.', '=', ' ', ',')).map(([at, c]) => `mutated:${at}:${c}`),
      fc.string({ maxLength: 80 }),
      fc.constantFrom('Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'bearer valid,Bearer valid', 'MTLS_POP valid', 'Negotiate x'),
    );
    const extraHeaders = fc.dictionary(fc.string({ minLength: 1, maxLength: 16 }), fc.string({ maxLength: 40 }), { maxKeys: 5 });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(pathish, fc.string({ maxLength: 30 })),
        fc.constantFrom('GET', 'POST', 'DELETE', '', 'g e t', '\u0000'),
        authorization,
        extraHeaders,
        fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
        async (path, method, auth, headers, contextExtensions) => {
          let value: string | undefined;
          if (auth === 'valid') value = `Bearer ${token}`;
          else if (auth?.startsWith('mutated:')) {
            const [, at, c] = auth.split(':');
            value = `Bearer ${mutateToken(token, Number(at), c ?? 'A')}`;
          } else value = auth?.replaceAll('valid', token);
          const all = { ...headers, ...(value !== undefined ? { authorization: value } : {}) };
          const request = envoyCheckRequest({ path: `/${path}`, method, headers: all, contextExtensions });
          const sent = (request as { attributes: { request: { http: { headers: Record<string, string> } } } }).attributes.request.http.headers['authorization'];
          // The scheme is case-insensitive, the token is not.
          const carriesToken = /^bearer (\S+)$/i.exec(sent?.trim() ?? '')?.[1] === token;
          checkAnswer(await h.sendRaw(request), carriesToken);
        },
      ),
      { numRuns: 300, interruptAfterTimeLimit: 2000 },
    );
  });

  it('answers byte-mutated requests without an RPC error and never allows one that lost its token', async () => {
    const edit = fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('set', 'insert', 'drop', 'cut') });
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 6 }), fc.constantFrom('/orders/1', '/admin/x', '/x'), async (edits, path) => {
        let bytes = encode(envoyCheckRequest({ token, path, headers: { 'x-trace': 'abc' } }));
        for (const e of edits) {
          const at = e.at % (bytes.length + 1);
          if (e.kind === 'set' && at < bytes.length) bytes[at] = e.byte;
          else if (e.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), Buffer.of(e.byte), bytes.subarray(at)]);
          else if (e.kind === 'drop') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
          else bytes = bytes.subarray(0, at);
        }
        checkAnswer(await h.sendBytes(bytes), bytes.includes(token));
      }),
      { numRuns: 300, interruptAfterTimeLimit: 2000 },
    );
  });

  it('fails only a message over the 8 MiB receive limit, with RESOURCE_EXHAUSTED', async () => {
    const huge = envoyCheckRequest({ token, path: '/orders', headers: { 'x-big': 'a'.repeat(9 * 1024 * 1024) } });
    const result = await h.sendRaw(huge);
    expect(result).toMatchObject({ kind: 'error', code: status.RESOURCE_EXHAUSTED });
    checkAnswer(result, true, true);
  });

  it('is still serving and allowing the valid token afterwards', async () => {
    expect(await h.health()).toBe('SERVING');
    allowance(await h.check({ token, path: '/orders/1' }));
  });
});
