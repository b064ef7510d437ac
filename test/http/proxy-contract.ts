import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer, type HttpServer } from '../../src/server/http/listener.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import type { BinaryLookup } from '../support/external-binary.js';
import { echoedHeader, startEchoUpstream, type Echoed, type EchoUpstream } from '../support/echo.js';
import { freePort } from '../support/loopback.js';
import type { RunningProxy } from './proxies.js';
import { recordingRuntime, send } from './support.js';

export interface ProxyUnderTest {
  /** The proxy's binary, as `requireBinary` found it. */
  readonly binary: BinaryLookup;
  /** Starts the proxy from its shipped configuration, pointed at these addresses. */
  start(binary: string, addresses: { authz: string; app: string; port: number }): Promise<RunningProxy>;
  /** The original host the rules see for requests to http://127.0.0.1:<port>. */
  readonly host: (port: number) => string;
}

/**
 * What every shipped proxy configuration must guarantee, checked against the real proxy with an
 * echo upstream: allow with identity headers, 401 with the challenge, 403, client-sent identity
 * headers never reaching the upstream, and rules seeing the path the client requested — the one
 * the upstream gets — whatever the client puts in X-Original-* / X-Forwarded-* headers.
 * Returns the context for proxy-specific cases.
 */
export function describeProxyContract(title: string, proxyUnderTest: ProxyUnderTest, extra?: (ctx: ProxyContext) => void): void {
  describe.skipIf(proxyUnderTest.binary.skip)(title, () => {
    const { runtime, seen } = recordingRuntime();
    let authz: HttpServer;
    let echo: EchoUpstream;
    let proxy: RunningProxy;
    let port: number;

    beforeAll(async () => {
      authz = await startHttpServer(runtime, { listen: '127.0.0.1:0' }, { log: silentLogger(), maxHeaderBytes: 64 * 1024 });
      echo = await startEchoUpstream();
      port = await freePort();
      proxy = await proxyUnderTest.start(proxyUnderTest.binary.path as string, { authz: authz.address, app: `127.0.0.1:${echo.port}`, port });
    });
    afterAll(async () => {
      await proxy?.stop();
      await echo?.close();
      await authz?.close(1000);
    });

    const ctx: ProxyContext = {
      get: (path, headers = []) => send(`${proxy.url}${path}`, { headers }),
      echoed: (body) => JSON.parse(body) as Echoed,
      lastSeen: () => seen.at(-1),
      output: () => proxy.output(),
    };
    const { get, echoed } = ctx;

    it('allows a good token and hands the caller identity to the upstream', async () => {
      const reply = await get('/orders/7?x=1', [['Authorization', 'Bearer good']]);
      expect(reply.status, proxy.output()).toBe(200);
      const up = echoed(reply.body);
      expect(up.url).toBe('/orders/7?x=1');
      expect(echoedHeader(up, 'x-entra-oid')).toEqual(['oid-good']);
      expect(echoedHeader(up, 'x-entra-roles')).toEqual(['Orders.Read']);
      expect(seen.at(-1)).toMatchObject({ ok: true, request: { method: 'GET', path: '/orders/7', query: 'x=1', host: proxyUnderTest.host(port) } });
    });

    it('denies with 401 and the Bearer challenge when no token is sent', async () => {
      const reply = await get('/orders');
      expect(reply.status).toBe(401);
      expect(reply.headers['www-authenticate']).toMatch(/^Bearer realm="orders"/);
      expect(reply.headers['x-entra-decision-id']).toMatch(/^d-/);
      expect(reply.headers['x-upstream']).toBeUndefined();
    });

    it('denies with 403 and an insufficient_scope challenge when a role is missing', async () => {
      const reply = await get('/admin/users', [['Authorization', 'Bearer good']]);
      expect(reply.status).toBe(403);
      expect(reply.headers['www-authenticate']).toMatch(/error="insufficient_scope"/);
      expect(reply.headers['x-upstream']).toBeUndefined();
    });

    // Caddy copies the empty value entra-authz answers for an identity it has not established
    // (so 2.6 does not forward its placeholder text); an empty header is not the client's.
    const sent = (up: Echoed, name: string): string[] => echoedHeader(up, name).filter((v) => v !== '');

    it('never lets identity headers a client sends reach the upstream', async () => {
      const spoofed: [string, string][] = [['X-Entra-Oid', 'spoofed'], ['X-Entra-Roles', 'Admin'], ['X-Entra-Decision-Id', 'forged'], ['X-Entra-Peer-Principal', 'spiffe://evil']];
      const anonymous = echoed((await get('/public/info', spoofed)).body);
      expect(sent(anonymous, 'x-entra-oid')).toEqual([]);
      expect(sent(anonymous, 'x-entra-roles')).toEqual([]);
      expect(sent(anonymous, 'x-entra-peer-principal')).toEqual([]);
      expect(sent(anonymous, 'x-entra-decision-id')).not.toContain('forged');
      const withToken = echoed((await get('/orders', [...spoofed, ['Authorization', 'Bearer good']])).body);
      expect(sent(withToken, 'x-entra-oid')).toEqual(['oid-good']);
      expect(sent(withToken, 'x-entra-roles')).toEqual(['Orders.Read']);
      expect(sent(withToken, 'x-entra-peer-principal')).toEqual([]);
    });

    it('lets rules see the path the client requested, whatever it puts in X-Original-* or X-Forwarded-*', async () => {
      const reply = await get('/admin/users', [
        ['Authorization', 'Bearer good'],
        ['X-Original-URI', '/public/info'],
        ['X-Original-Method', 'HEAD'],
        ['X-Original-Host', 'other.example'],
        ['X-Forwarded-Uri', '/public/info'],
        ['X-Forwarded-Method', 'HEAD'],
        ['X-Forwarded-Host', 'other.example'],
      ]);
      expect(reply.status).toBe(403);
      expect(seen.at(-1)).toMatchObject({ ok: true, request: { path: '/admin/users', method: 'GET', host: proxyUnderTest.host(port) } });
    });

    it('sends the upstream exactly the URI the rules saw, dot segments included', async () => {
      const reply = await get('/public/%2e%2e/admin?x=1');
      const up = echoed(reply.body);
      const rulesSaw = seen.at(-1);
      expect(rulesSaw?.ok).toBe(true);
      if (!rulesSaw?.ok) return;
      expect(up.url).toBe(`${rulesSaw.request.path}?${rulesSaw.request.query}`);
    });

    extra?.(ctx);
  });
}

export interface ProxyContext {
  get(path: string, headers?: [string, string][]): ReturnType<typeof send>;
  echoed(body: string): Echoed;
  lastSeen(): ReturnType<typeof recordingRuntime>['seen'][number] | undefined;
  output(): string;
}
