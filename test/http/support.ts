import { extractToken } from '../../src/authn/bearer.js';
import { validateConfig } from '../../src/config/load.js';
import type { Decision } from '../../src/core/decision.js';
import type { TokenIdentity } from '../../src/core/identity.js';
import type { ReasonCode } from '../../src/core/reasons.js';
import { DEFAULT_REQUEST_LIMITS, type NormalizeResult } from '../../src/core/request.js';
import { planResponse, type ResponsePlan } from '../../src/core/response.js';
import { responseSettings } from '../../src/runtime/compose.js';
import type { HttpRuntime } from '../../src/server/http/handler.js';
import { tokenIdentity } from '../fixtures/identity.js';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';

export interface HttpReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/**
 * Sends one HTTP/1.1 request with headers exactly as given (repeats kept, names as spelled), as a
 * proxy or a hostile client would.
 */
export function send(
  url: string,
  options: { method?: string; headers?: readonly (readonly [string, string])[]; tls?: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'servername'> } = {},
): Promise<HttpReply> {
  // The path is sent verbatim: URL parsing would resolve `..` and `%2e%2e` segments.
  const origin = /^https?:\/\/[^/]+/.exec(url)?.[0] ?? url;
  const target = new URL(origin);
  const path = url.slice(origin.length) || '/';
  const given = options.headers ?? [];
  // With headers given as a list Node adds no Host header of its own.
  const withHost = given.some(([k]) => k.toLowerCase() === 'host') ? given : [['Host', target.host] as const, ...given];
  const flat = withHost.flatMap(([k, v]) => [k, v]);
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path,
        method: options.method ?? 'GET',
        headers: flat,
        agent: false,
        ...options.tls,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The caller the good token stands for. */
const GOOD_IDENTITY: TokenIdentity = tokenIdentity({ oid: 'oid-good', sub: 'oid-good', roles: ['Orders.Read'] });

/**
 * A stand-in for the runtime that records every request view the adapter hands it, with a fixed
 * policy: `/public…` is open, `/admin…` needs a role the good token lacks (403), everything else
 * needs exactly one `Authorization: Bearer good` (read by the real token reader; else 401, or 400 for several); `/unavailable…` cannot be decided (keys unavailable). Real engine tests are in http-mode.test.ts.
 */
export function recordingRuntime(options: { serving?: boolean; fail?: boolean } = {}) {
  const seen: NormalizeResult[] = [];
  const decide = (request: NormalizeResult): Decision => {
    const base = { id: `d-${seen.length}`, rule: undefined, identity: undefined, detail: '' };
    const deny = (reason: ReasonCode, identity?: TokenIdentity): Decision => ({ ...base, kind: 'deny', reason, identity });
    if (!request.ok) return deny('request_malformed');
    if (request.request.path.startsWith('/public')) return { ...base, kind: 'allow', reason: 'allowed_anonymous' };
    if (request.request.path.startsWith('/unavailable')) return { ...base, kind: 'unavailable', reason: 'keys_unavailable' };
    const credential = extractToken(request.request, 'authorization');
    if (credential.kind === 'none') return deny('token_missing');
    if (credential.kind === 'invalid') return deny(credential.reason);
    if (credential.token !== 'good') return deny('token_signature_invalid');
    if (request.request.path.startsWith('/admin')) return deny('missing_role', GOOD_IDENTITY);
    return { ...base, kind: 'allow', reason: 'allowed', identity: GOOD_IDENTITY };
  };
  const config = validateConfig({
    entra: { tenants: ['11111111-2222-3333-4444-555555555555'], audiences: ['api://orders'] },
    rules: [{ name: 'any' }],
    response: { realm: 'orders' },
  });
  const settings = responseSettings(config);
  const runtime: HttpRuntime = {
    current: () => ({
      config,
      limits: DEFAULT_REQUEST_LIMITS,
      check: async (request): Promise<ResponsePlan> => {
        seen.push(request);
        if (options.fail) throw new Error('boom');
        return planResponse(decide(request), settings, undefined, request.ok ? request.request.headers.keys() : undefined);
      },
    }),
    isServing: () => options.serving ?? true,
  };
  return { runtime, seen };
}
