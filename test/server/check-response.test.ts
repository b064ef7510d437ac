/**
 * Answers built once per caller and reused: each reuse must be byte for byte what a fresh
 * encoding with the new decision id would be, and must never carry another caller's identity.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Decision } from '../../src/core/decision.js';
import type { TokenIdentity } from '../../src/core/identity.js';
import { planResponse, type PeerFacts, type ResponseSettings } from '../../src/core/response.js';
import { createCheckResponseEncoder, toCheckResponse } from '../../src/server/check-response.js';
import { loadAuthorizationService } from '../../src/server/protos.js';
import { tokenIdentity } from '../fixtures/identity.js';
import { RESPONSE_SETTINGS } from '../fixtures/response-settings.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

const check = loadAuthorizationService()['Check']!;
const serialize = (message: unknown): Buffer => check.responseSerialize(message);
const decode = (bytes: Buffer): Record<string, unknown> => check.responseDeserialize(bytes) as Record<string, unknown>;

function identity(oid: string, roles: string[]): TokenIdentity {
  return tokenIdentity({ oid, sub: oid, appId: `app-of-${oid}`, roles, tokenHash: `hash-of-${oid}` });
}

const alice = identity('alice-oid', ['Orders.Read']);
const bob = identity('bob-oid', ['Orders.Write']);
const peer = (principal: string): PeerFacts => ({ principal, fingerprintSha256: `fp-${principal}`, metadata: { peer_principal: principal } });

let ids = 0;
const newId = (): string => `${String(++ids).padStart(8, '0')}-0000-4000-8000-000000000000`;
const allow = (who: TokenIdentity | undefined): Decision => ({ kind: 'allow', id: newId(), reason: 'allowed', detail: '', rule: 'orders', identity: who });
const deny = (reason: 'token_missing' | 'missing_role', who?: TokenIdentity): Decision => ({ kind: 'deny', id: newId(), reason, detail: '', rule: 'orders', identity: who });

/** What a fresh encoding of the same decision gives. */
function fresh(decision: Decision, s: ResponseSettings, p?: PeerFacts): Record<string, unknown> {
  const plan = planResponse(decision, s, p);
  if (plan.kind === 'unavailable') throw new Error('unexpected');
  return decode(serialize(toCheckResponse(plan)));
}

function answered(encoder: ReturnType<typeof createCheckResponseEncoder>, decision: Decision, s: ResponseSettings, p?: PeerFacts): Record<string, unknown> {
  const plan = planResponse(decision, s, p);
  if (plan.kind === 'unavailable') throw new Error('unexpected');
  return decode(encoder.encode(plan));
}

// The runtime names its plans (recognised by name); unnamed plans are recognised by content.
describe.each([
  ['unnamed plans', RESPONSE_SETTINGS],
  ['named plans', { ...RESPONSE_SETTINGS, planScope: 'configuration-1' }],
])('answers reused for the same caller, %s', (_kind, settings: ResponseSettings) => {
  it('equal a fresh encoding with the new decision id, for allows and denies', () => {
    const encoder = createCheckResponseEncoder(serialize);
    for (let i = 0; i < 5; i++) {
      for (const decision of [allow(alice), deny('token_missing'), deny('missing_role', alice)]) {
        expect(answered(encoder, decision, settings)).toEqual(fresh(decision, settings));
      }
    }
  });

  it('carry a fresh decision id in the header, the metadata and the deny body every time', () => {
    const encoder = createCheckResponseEncoder(serialize);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const decision = deny('token_missing');
      const r = answered(encoder, decision, settings) as { denied_response: { headers: { header: { key: string; value: string } }[]; body: string }; dynamic_metadata: { fields: Record<string, { stringValue: string }> } };
      expect(r.denied_response.headers.find((h) => h.header.key === 'x-entra-decision-id')?.header.value).toBe(decision.id);
      expect(JSON.parse(r.denied_response.body)).toMatchObject({ decision_id: decision.id });
      expect(r.dynamic_metadata.fields['decision_id']?.stringValue).toBe(decision.id);
      seen.add(decision.id);
    }
    expect(seen.size).toBe(4);
  });

  it('never give one caller the identity headers of another, whatever the order', () => {
    const encoder = createCheckResponseEncoder(serialize);
    for (let i = 0; i < 6; i++) {
      for (const who of [alice, bob]) {
        const r = answered(encoder, allow(who), settings, peer(who.oid));
        const headers = Object.fromEntries(
          (r as { ok_response: { headers: { header: { key: string; value: string } }[] } }).ok_response.headers.map((h) => [h.header.key, h.header.value]),
        );
        expect(headers).toMatchObject({ 'x-entra-oid': who.oid, 'x-entra-app-id': who.appId, 'x-entra-roles': who.roles.join(','), 'x-entra-peer-principal': who.oid });
      }
    }
  });

  it('follow the peer: the same token from another peer gets that peer’s headers', () => {
    const encoder = createCheckResponseEncoder(serialize);
    for (let i = 0; i < 3; i++) {
      for (const from of ['spiffe://a', 'spiffe://b']) {
        const decision = allow(alice);
        expect(answered(encoder, decision, settings, peer(from))).toEqual(fresh(decision, settings, peer(from)));
      }
    }
  });

  it('follow a reloaded configuration (new header names) instead of reusing the old answer', () => {
    const encoder = createCheckResponseEncoder(serialize);
    // A reload brings new settings, named apart from the old ones.
    const renamed: ResponseSettings = { ...settings, identityHeaders: { ...settings.identityHeaders, oid: 'x-caller-oid' }, ...(settings.planScope ? { planScope: 'configuration-2' } : {}) };
    for (let i = 0; i < 3; i++) answered(encoder, allow(alice), settings);
    const decision = allow(alice);
    expect(answered(encoder, decision, renamed)).toEqual(fresh(decision, renamed));
  });

  it('stay within their bound when callers keep changing', () => {
    let encodings = 0;
    const encoder = createCheckResponseEncoder((message) => {
      encodings++;
      return serialize(message);
    }, 2);
    for (let i = 0; i < 3; i++) for (const who of [alice, bob, identity('carol-oid', [])]) answered(encoder, allow(who), settings);
    // Three callers in turn never fit in two entries: each answer is encoded afresh, and still right.
    expect(encodings).toBe(9);
    const decision = allow(bob);
    expect(answered(encoder, decision, settings)).toEqual(fresh(decision, settings));
  });

  it('are encoded afresh when decision ids are short or change length', () => {
    const encoder = createCheckResponseEncoder(serialize);
    for (const id of ['d1', 'd22', 'decision-three-with-a-longer-id-than-a-uuid-has', 'd1']) {
      const decision = { ...allow(alice), id };
      expect(answered(encoder, decision, settings)).toEqual(fresh(decision, settings));
    }
  });

  it('are encoded a fixed number of times per caller, however often it checks', () => {
    let encodings = 0;
    const encoder = createCheckResponseEncoder((message) => {
      encodings++;
      return serialize(message);
    });
    for (let i = 0; i < 50; i++) answered(encoder, allow(alice), settings);
    // First sight, then the template and its self-check.
    expect(encodings).toBe(3);
  });
});

describe('the server answering two callers over gRPC', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
    await h.waitServing();
  });
  afterAll(() => h.close());

  it('gives each caller its own identity and every check its own decision id', async () => {
    const readerToken = await h.emulator.issueToken({ oid: '11111111-1111-4111-8111-111111111111', roles: ['Orders.Read'] });
    const writerToken = await h.emulator.issueToken({ oid: '22222222-2222-4222-8222-222222222222', roles: ['Orders.Write'] });
    const ids = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const [reader, writer] = await Promise.all([h.check({ token: readerToken }), h.check({ token: writerToken })]);
      const r = allowance(reader);
      const w = allowance(writer);
      expect(r.headers).toMatchObject({ 'x-entra-oid': '11111111-1111-4111-8111-111111111111', 'x-entra-roles': 'Orders.Read' });
      expect(w.headers).toMatchObject({ 'x-entra-oid': '22222222-2222-4222-8222-222222222222', 'x-entra-roles': 'Orders.Write' });
      for (const a of [r, w]) {
        expect(a.metadata['decision_id']).toBe(a.headers['x-entra-decision-id']);
        ids.add(a.headers['x-entra-decision-id']!);
      }
    }
    expect(ids.size).toBe(8);
  });

  it('answers with the new header names after a reload, for a caller whose answer was reused before', async () => {
    const token = await h.emulator.issueToken({ roles: ['Orders.Read'] });
    for (let i = 0; i < 3; i++) expect(allowance(await h.check({ token })).headers).toHaveProperty('x-entra-oid');
    await h.app.reload({ ...h.config, response: { ...h.config.response, identityHeaders: { ...h.config.response.identityHeaders, oid: 'x-caller-oid' } } });
    const after = allowance(await h.check({ token })).headers;
    expect(after).toHaveProperty('x-caller-oid');
    expect(after).not.toHaveProperty('x-entra-oid');
    await h.app.reload(h.config);
  });

  it('gives every repeated denial its own decision id in the body and metadata', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const d = denial(await h.check({}));
      expect(d.reason).toBe('token_missing');
      expect(d.body['decision_id']).toBe(d.headers['x-entra-decision-id']);
      ids.add(String(d.body['decision_id']));
    }
    expect(ids.size).toBe(3);
  });
});
