import { describe, expect, it } from 'vitest';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { planResponse, type ResponseSettings } from '../../src/core/response.js';
import type { TokenVerifier } from '../../src/core/verifier.js';
import { createCachingVerifier } from '../../src/cache/token-cache.js';
import type { CheckOutcome } from '../../src/core/outcome.js';
import { normalizeCheckRequest, type RequestView } from '../../src/core/request.js';
import { createDecider } from '../../src/engine/decide.js';
import { decideCheckRequest } from '../support/decide.js';
import { APP_A, configWithRules, fakeVerifier, identity } from './fixtures.js';

const RULES = `
  - name: health
    match: { paths: [{ exact: /healthz }] }
    allowAnonymous: true
  - name: internal
    match: { paths: [{ prefix: /internal }] }
    require:
      peer: { peerOnly: true, spiffeIds: [spiffe://cluster.local/ns/shop/sa/checkout] }
  - name: orders-write
    match: { paths: [{ prefix: /orders }], methods: [POST] }
    require: { roles: { anyOf: [Orders.Write] } }
  - name: orders-read
    match: { paths: [{ prefix: /orders }] }
    require: { roles: { anyOf: [Orders.Read] } }
`;

const reader = identity({ roles: ['Orders.Read'] });

function decider(rules = RULES, extra = '', verifier: TokenVerifier = fakeVerifier({ reader, writer: identity({ roles: ['Orders.Write'] }) })) {
  const config = configWithRules(rules, extra);
  const d = createDecider({ config, verifier, newId: () => 'id-1' });
  return { config, decide: (raw: unknown) => decideCheckRequest(d, raw) };
}

const req = (path: string, opts: { token?: string; method?: string; principal?: string } = {}) =>
  envoyCheckRequest({
    path,
    method: opts.method ?? 'GET',
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    ...(opts.principal !== undefined ? { sourcePrincipal: opts.principal } : {}),
  });

describe('decision flow', () => {
  it('allows anonymous rules without reading any credential', async () => {
    const verifier = fakeVerifier({});
    const { decide } = decider(RULES, '', verifier);
    const out = await decide(req('/healthz', { token: 'garbage' }));
    expect(out.decision).toMatchObject({ kind: 'allow', reason: 'allowed_anonymous', rule: 'health', identity: undefined });
    expect(verifier.calls).toEqual([]);
  });

  it('peerOnly rules need the peer, not a token; a token that is sent must still be valid', async () => {
    const verifier = fakeVerifier({ reader });
    const { decide } = decider(RULES, '', verifier);
    const checkout = 'spiffe://cluster.local/ns/shop/sa/checkout';
    const ok = await decide(req('/internal/jobs', { principal: checkout }));
    expect(ok.decision).toMatchObject({ kind: 'allow', reason: 'allowed', rule: 'internal', identity: undefined });
    expect(ok.peer?.spiffeId).toBe(checkout);
    expect(verifier.calls).toEqual([]);
    const withToken = await decide(req('/internal/jobs', { principal: checkout, token: 'reader' }));
    expect(withToken.decision).toMatchObject({ kind: 'allow', identity: reader });
    const badToken = await decide(req('/internal/jobs', { principal: checkout, token: 'junk' }));
    expect(badToken.decision).toMatchObject({ kind: 'deny', reason: 'token_signature_invalid' });
    const other = await decide(req('/internal/jobs', { principal: 'spiffe://cluster.local/ns/shop/sa/cart' }));
    expect(other.decision).toMatchObject({ kind: 'deny', reason: 'peer_not_allowed' });
    const none = await decide(req('/internal/jobs'));
    expect(none.decision).toMatchObject({ kind: 'deny', reason: 'peer_missing' });
  });

  it.each([
    ['/orders', { token: 'reader' }, 'allow', 'allowed'],
    ['/orders', {}, 'deny', 'token_missing'],
    ['/orders', { token: 'forged' }, 'deny', 'token_signature_invalid'],
    ['/orders', { token: 'reader', method: 'POST' }, 'deny', 'missing_role'],
    ['/orders', { token: 'writer', method: 'POST' }, 'allow', 'allowed'],
    ['/invoices', { token: 'reader' }, 'deny', 'no_matching_rule'],
    ['/orders/../admin', { token: 'reader' }, 'deny', 'path_not_canonical'],
  ] as const)('%s %j → %s %s', async (path, opts, kind, reason) => {
    const { decide } = decider();
    const out = await decide(req(path, opts));
    expect([out.decision.kind, out.decision.reason]).toEqual([kind, reason]);
    expect(out.decision.dryRun).toBeUndefined();
  });

  it('checks a bound token against the peer certificate whatever the rule says (never failing open)', async () => {
    const bound = identity({ roles: ['Orders.Read'], boundCertificateThumbprint: 'thumb-1' });
    const config = configWithRules(RULES);
    const withPeer = (thumbprintS256: string | undefined) => (raw: unknown) =>
      decideCheckRequest(createDecider({
        config,
        verifier: fakeVerifier({ bound, reader }),
        newId: () => 'id',
        peer: {
          resolve: () => ({
            ok: true,
            peer: {
              source: 'certificate',
              principal: 'spiffe://td/x',
              spiffeId: 'spiffe://td/x',
              uriSans: [],
              dnsSans: [],
              subject: '',
              fingerprintSha256: undefined,
              thumbprintS256,
              notBeforeMs: undefined,
              notAfterMs: undefined,
              caVerified: false,
              forwardedBy: undefined,
            },
          }),
        },
      }), raw);
    expect((await withPeer('thumb-1')(req('/orders', { token: 'bound' }))).decision.reason).toBe('allowed');
    expect((await withPeer('thumb-2')(req('/orders', { token: 'bound' }))).decision.reason).toBe('token_binding_mismatch');
    expect((await withPeer(undefined)(req('/orders', { token: 'bound' }))).decision.reason).toBe('token_binding_no_certificate');
    const pop = envoyCheckRequest({ path: '/orders', headers: { authorization: 'MTLS_POP reader' } });
    expect((await withPeer('thumb-1')(pop)).decision.reason).toBe('token_not_bound');
    // Without any peer resolver configured: Envoy's source only, here no certificate at all.
    expect((await decider(RULES, '', fakeVerifier({ bound })).decide(req('/orders', { token: 'bound' }))).decision.reason).toBe(
      'token_binding_no_certificate',
    );
  });

  it('keeps every requirement outcome on the outcome for explain and audit', async () => {
    const { decide } = decider();
    const out = await decide(req('/orders', { token: 'reader', method: 'POST' }));
    expect(out.outcomes).toEqual([{ requirement: 'roles any of [Orders.Write]', met: false, detail: 'has [Orders.Read]' }]);
    expect(out.decision.identity?.appId).toBe(APP_A);
  });
});

describe('dry-run', () => {
  it('per rule: a would-be denial is allowed and recorded on the decision', async () => {
    const rules = RULES.replace('    require: { roles: { anyOf: [Orders.Write] } }', '    require: { roles: { anyOf: [Orders.Write] } }\n    dryRun: true');
    const { decide } = decider(rules);
    const out = await decide(req('/orders', { token: 'reader', method: 'POST' }));
    expect(out.decision).toMatchObject({ kind: 'allow', reason: 'allowed', rule: 'orders-write', dryRun: { wouldDeny: 'missing_role' } });
    expect(out.decision.identity).toBeDefined();
    // Other rules still enforce.
    expect((await decide(req('/orders', { token: 'forged' }))).decision).toMatchObject({ kind: 'deny', reason: 'token_signature_invalid' });
    // A request the rule allows anyway is a plain allow.
    expect((await decide(req('/orders', { token: 'writer', method: 'POST' }))).decision.dryRun).toBeUndefined();
  });

  it('globally: also covers unmatched, non-canonical and unreadable requests, and token failures', async () => {
    const { decide } = decider(RULES, 'dryRun: true\n');
    const cases: [unknown, string][] = [
      [req('/invoices', { token: 'reader' }), 'no_matching_rule'],
      [req('/a/../b'), 'path_not_canonical'],
      [{ attributes: {} }, 'request_malformed'],
      [req('/orders'), 'token_missing'],
      [req('/orders', { token: 'forged' }), 'token_signature_invalid'],
    ];
    for (const [raw, wouldDeny] of cases) {
      const out = await decide(raw);
      expect(out.decision).toMatchObject({ kind: 'allow', reason: 'allowed', dryRun: { wouldDeny } });
    }
  });

  it('turns an unavailable key store into an allow too (the would-be error is recorded)', async () => {
    const verifier: TokenVerifier = { verify: async () => ({ ok: false, reason: 'keys_unavailable', detail: 'down' }) };
    const { decide } = decider(RULES, 'dryRun: true\n', verifier);
    expect((await decide(req('/orders', { token: 'reader' }))).decision).toMatchObject({ kind: 'allow', dryRun: { wouldDeny: 'keys_unavailable' } });
    const enforcing = decider(RULES, '', verifier);
    expect((await enforcing.decide(req('/orders', { token: 'reader' }))).decision.kind).toBe('unavailable');
  });

  it('a rule can opt out of a global dry-run', async () => {
    const rules = RULES.replace('    require: { roles: { anyOf: [Orders.Write] } }', '    require: { roles: { anyOf: [Orders.Write] } }\n    dryRun: false');
    const { decide } = decider(rules, 'dryRun: true\n');
    expect((await decide(req('/orders', { token: 'reader', method: 'POST' }))).decision).toMatchObject({ kind: 'deny', reason: 'missing_role' });
  });

  it('the response carries the would-be reason in dynamic metadata and the optional header; clients cannot forge the header', async () => {
    const { config, decide } = decider(RULES, 'dryRun: true\nresponse:\n  dryRunHeader: x-entra-authz-dry-run\n');
    const settings: ResponseSettings = {
      identityHeaders: config.response.identityHeaders,
      tokenHeader: 'authorization',
      removeTokenHeader: false,
      realm: 'r',
      authorizationUri: 'https://login.microsoftonline.com/x/oauth2/authorize',
      dryRunHeader: config.response.dryRunHeader,
      stripHeaders: { names: [], prefixes: [] },
    };
    const dry = planResponse((await decide(req('/orders', { token: 'reader', method: 'POST' }))).decision, settings);
    expect(dry.kind).toBe('allow');
    if (dry.kind !== 'allow') return;
    expect(dry.setHeaders).toContainEqual(['x-entra-authz-dry-run', 'missing_role']);
    expect(dry.metadata['dry_run_would_deny']).toBe('missing_role');

    const real = planResponse((await decide(req('/orders', { token: 'reader' }))).decision, settings);
    if (real.kind !== 'allow') throw new Error('expected allow');
    expect(real.removeHeaders).toContain('x-entra-authz-dry-run');
    expect(real.metadata['dry_run_would_deny']).toBeUndefined();
  });
});

describe('the decision flow never throws', () => {
  const { decide } = decider();
  const junk: unknown[] = [
    undefined,
    null,
    42,
    'x',
    [],
    { attributes: null },
    { attributes: { request: { http: { path: 5, method: {}, headers: [] } } } },
    { attributes: { request: { http: { path: '/orders', method: 'GET', headers: { authorization: 'Bearer a.b.c' } } }, context_extensions: 'x' } },
    { attributes: { request: { http: { path: '/orders', method: 'GET', headers: { authorization: 'Bearer reader' } } }, source: { principal: 7, certificate: '%ZZ' } } },
    { attributes: { request: { http: { path: '/internal/x', method: 'GET', headers: {} } }, source: { principal: 'spiffe://x', certificate: '-----BEGIN%20CERTIFICATE-----%0Agarbage' } } },
    new Proxy({}, { get: () => { throw new Error('boom'); } }),
  ];
  it.each(junk.map((j, i) => [i, j]))('input #%i', async (_i, raw) => {
    const out = await decide(raw);
    expect(['allow', 'deny', 'unavailable']).toContain(out.decision.kind);
  });
});

describe('deciding without waiting', () => {
  const view = (raw: unknown): RequestView => {
    const normalized = normalizeCheckRequest(raw);
    if (!normalized.ok) throw new Error(normalized.detail);
    return normalized.request;
  };
  const cachingDecider = () => {
    const verifier = createCachingVerifier(fakeVerifier({ reader }), { maxEntries: 10, ttlSeconds: 300, clockSkewSeconds: 60 }, Date.now);
    return createDecider({ config: configWithRules(RULES, ''), verifier, newId: () => 'id-1' });
  };

  it('decides at once for a token the cache holds, and waits only for one it has to verify', async () => {
    const d = cachingDecider();
    const first = d.decide(view(req('/orders', { token: 'reader' })));
    expect(first).toBeInstanceOf(Promise);
    expect((await first).decision).toMatchObject({ kind: 'allow', identity: reader });
    const again = d.decide(view(req('/orders', { token: 'reader' })));
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as CheckOutcome).decision).toMatchObject({ kind: 'allow', identity: reader });
    expect(d.decide(view(req('/orders')))).not.toBeInstanceOf(Promise);
  });

  it('goes through the traced phases for a cached token when they become spans', async () => {
    const d = cachingDecider();
    await d.decide(view(req('/orders', { token: 'reader' })));
    const phases: string[] = [];
    const tracer = { recording: true, phase: <T>(name: string, fn: () => Promise<T>): Promise<T> => (phases.push(name), fn()) };
    expect((await d.decide(view(req('/orders', { token: 'reader' })), tracer)).decision.kind).toBe('allow');
    expect(phases).toEqual(['token.verify', 'policy.evaluate']);
  });
});
