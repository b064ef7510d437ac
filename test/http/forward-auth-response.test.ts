import { describe, expect, it } from 'vitest';
import { ENVOY_HEADERS_TO_REMOVE, toForwardAuthAnswer } from '../../src/core/forward-auth-response.js';
import type { ResponsePlan } from '../../src/core/response.js';

const allow: ResponsePlan = {
  kind: 'allow',
  setHeaders: [['x-entra-decision-id', 'd-1'], ['x-entra-oid', 'oid-1']],
  removeHeaders: ['x-entra-scopes', 'authorization'],
  metadata: { decision_id: 'd-1', reason: 'allowed' },
};

const deny = (httpStatus: number): ResponsePlan => ({
  kind: 'deny',
  grpcCode: 16,
  httpStatus,
  headers: [['content-type', 'application/json'], ['www-authenticate', 'Bearer realm="r"']],
  body: '{"error":"token_expired"}',
  metadata: { decision_id: 'd-2', reason: 'token_expired' },
});

describe('toForwardAuthAnswer', () => {
  it('allows with 200 and asks Envoy to remove client-sent identity headers and the token header', () => {
    const answer = toForwardAuthAnswer(allow, 'envoy', 'authorization');
    expect(answer.status).toBe(200);
    expect(answer.headers).toContainEqual(['x-entra-oid', 'oid-1']);
    expect(answer.headers).toContainEqual([ENVOY_HEADERS_TO_REMOVE, 'x-entra-scopes,authorization']);
  });

  it('hands nginx and Caddy empty identity headers to overwrite client copies, never an empty credential header', () => {
    for (const shape of ['nginx', 'forwarded'] as const) {
      const answer = toForwardAuthAnswer(allow, shape, 'authorization');
      expect(answer.headers).toContainEqual(['x-entra-scopes', '']);
      expect(answer.headers.map(([k]) => k)).not.toContain('authorization');
      expect(answer.headers.map(([k]) => k)).not.toContain(ENVOY_HEADERS_TO_REMOVE);
    }
  });

  it('passes a deny through with its status, challenge and body, never cached', () => {
    const answer = toForwardAuthAnswer(deny(401), 'forwarded', 'authorization');
    expect(answer).toMatchObject({ status: 401, body: '{"error":"token_expired"}' });
    expect(answer.headers).toContainEqual(['www-authenticate', 'Bearer realm="r"']);
    expect(answer.headers).toContainEqual(['cache-control', 'no-store']);
  });

  it('answers nginx 403 for a 400 deny, which nginx would otherwise turn into a 500', () => {
    expect(toForwardAuthAnswer(deny(400), 'nginx', 'authorization').status).toBe(403);
    expect(toForwardAuthAnswer(deny(400), 'envoy', 'authorization').status).toBe(400);
    expect(toForwardAuthAnswer(deny(401), 'nginx', 'authorization').status).toBe(401);
    expect(toForwardAuthAnswer(deny(500), 'nginx', 'authorization').status).toBe(403);
  });

  it('never answers Envoy a deny with 5xx, which failure_mode_allow would turn into an allow', () => {
    expect(toForwardAuthAnswer(deny(500), 'envoy', 'authorization').status).toBe(403);
    expect(toForwardAuthAnswer(deny(500), 'forwarded', 'authorization').status).toBe(500);
  });

  it('answers 503 when signing keys are unavailable, so the proxy fails the request rather than allowing it', () => {
    const answer = toForwardAuthAnswer({ kind: 'unavailable', message: 'keys_unavailable' }, 'envoy', 'authorization');
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'keys_unavailable' });
  });
});
