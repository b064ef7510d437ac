import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { identityHeadersSchema } from '../../src/config/schema.js';
import { FORWARD_AUTH_PATHS, ORIGINAL_REQUEST_HEADERS } from '../../src/core/forward-auth.js';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const IDENTITY_HEADERS = Object.values(identityHeadersSchema.parse({}));
const lower = (list: unknown): string[] => (list as string[]).map((h) => h.toLowerCase());

describe('Traefik ForwardAuth config (deploy/traefik, not run: Traefik is not packaged here)', () => {
  const config = parse(read('deploy/traefik/dynamic.yaml')) as {
    http: { middlewares: Record<string, { forwardAuth: Record<string, unknown> }>; routers: Record<string, { middlewares: string[] }> };
  };
  const forwardAuth = config.http.middlewares['entra-authz']?.forwardAuth ?? {};

  it('asks the forward-auth endpoint, whose parser reads the headers Traefik sends', () => {
    expect(new URL(String(forwardAuth['address'])).pathname).toBe(FORWARD_AUTH_PATHS.forwarded);
    // Traefik's documented forward-request headers.
    expect(Object.values(ORIGINAL_REQUEST_HEADERS.forwarded)).toEqual(['x-forwarded-method', 'x-forwarded-uri', 'x-forwarded-host', 'x-forwarded-proto']);
  });

  it('does not trust X-Forwarded-* headers a client sends', () => {
    expect(forwardAuth['trustForwardHeader']).toBe(false);
  });

  it('copies every identity header from the answer, replacing client copies', () => {
    expect(lower(forwardAuth['authResponseHeaders']).sort()).toEqual([...IDENTITY_HEADERS].sort());
  });

  it('puts every router behind the middleware', () => {
    for (const router of Object.values(config.http.routers)) expect(router.middlewares).toContain('entra-authz');
  });
});

describe('Istio envoyExtAuthzHttp provider (deploy/istio/ext-authz-http-provider.yaml)', () => {
  const doc = parse(read('deploy/istio/ext-authz-http-provider.yaml')) as { spec: { meshConfig: { extensionProviders: { envoyExtAuthzHttp: Record<string, unknown> }[] } } };
  const provider = doc.spec.meshConfig.extensionProviders[0]?.envoyExtAuthzHttp ?? {};

  it('sends the original path behind the Envoy prefix and fails closed', () => {
    expect(provider['pathPrefix']).toBe(FORWARD_AUTH_PATHS.envoyPrefix);
    expect(provider['failOpen']).toBe(false);
    expect(provider['includeRequestHeadersInCheck']).toContain('authorization');
  });

  it('lets every identity header reach the upstream and the challenge reach the client', () => {
    expect(lower(provider['headersToUpstreamOnAllow']).sort()).toEqual([...IDENTITY_HEADERS].sort());
    expect(provider['headersToDownstreamOnDeny']).toContain('www-authenticate');
  });
});

describe('nginx and Caddy configs name every identity header', () => {
  it('nginx overwrites each one from the answer', () => {
    const nginx = read('deploy/nginx/entra-authz.conf').toLowerCase();
    for (const h of IDENTITY_HEADERS) {
      expect(nginx).toMatch(new RegExp(`proxy_set_header ${h} +\\$entra_authz_`));
      expect(nginx).toContain(`$upstream_http_${h.replaceAll('-', '_')}`);
    }
  });

  it('Caddy deletes client copies and copies each one from the answer', () => {
    const caddy = read('deploy/caddy/Caddyfile').toLowerCase();
    const copied = /copy_headers ([^\n]+)/.exec(caddy)?.[1]?.split(/\s+/) ?? [];
    for (const h of IDENTITY_HEADERS) {
      expect(caddy).toContain(`request_header -${h}\n`);
      expect(copied).toContain(h);
    }
  });
});
