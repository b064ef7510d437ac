/**
 * Shared helpers for policy tests: configs from YAML (through the real loader), Envoy-shaped
 * requests (through the real normalizer), token identities, and a fake verifier.
 */
import { envoyCheckRequest, type CheckRequestOptions } from '../../src/cli/check.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { TokenIdentity } from '../../src/core/identity.js';
import { tokenIdentity } from '../fixtures/identity.js';
import { normalizeCheckRequest, type RequestView } from '../../src/core/request.js';
import type { TokenVerifier, VerifyResult } from '../../src/core/verifier.js';

export const TENANT = '11111111-1111-4111-8111-111111111111';
export const TENANT_2 = '22222222-2222-4222-8222-222222222222';
export const APP_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
export const APP_B = 'bbbbbbbb-0000-4000-8000-00000000000b';

/** A config whose `rules:` section is the given YAML (indented under `rules:`). */
export function configWithRules(rulesYaml: string, extra = ''): Config {
  return parseConfig(
    `entra:\n  tenants: [${TENANT}, ${TENANT_2}]\n  audiences: [api://orders]\n${extra}rules:\n${rulesYaml}`,
    'test.yaml',
    { env: {} },
  );
}

export function requestView(opts: CheckRequestOptions = {}): RequestView {
  const r = normalizeCheckRequest(envoyCheckRequest(opts));
  if (!r.ok) throw new Error(r.detail);
  return r.request;
}

/** A token identity of TENANT and APP_A with no roles: each test grants what it is about. */
export function identity(over: Partial<TokenIdentity> = {}): TokenIdentity {
  return tokenIdentity({ tid: TENANT, appId: APP_A, roles: [], ...over });
}

/** Verifies the token `good:<name>` as the identity registered under that name; anything else fails. */
export function fakeVerifier(identities: Record<string, TokenIdentity>): TokenVerifier & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async verify(token: string): Promise<VerifyResult> {
      calls.push(token);
      const id = identities[token];
      return id ? { ok: true, identity: id } : { ok: false, reason: 'token_signature_invalid', detail: 'fake: unknown token' };
    },
  };
}
