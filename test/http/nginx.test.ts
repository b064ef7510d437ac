import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpServer } from '../../src/server/http/listener.js';
import { startHttpServer } from '../../src/server/http/listener.js';
import { silentLogger } from '../../src/server/logger.js';
import { requireBinary } from '../support/external-binary.js';
import { echoedHeader, freePort, runProxy, shippedConfig, startEcho, type Echoed, type EchoUpstream, type RunningProxy } from './proxies.js';
import { recordingRuntime, send } from './support.js';

const nginx = requireBinary('nginx');

// The shipped server block inside the smallest nginx.conf a non-root test can run.
const mainConfig = `
user root;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  include {dir}/entra-authz.conf;
}
`;

describe.skipIf(nginx.skip)('nginx auth_request in front of entra-authz (deploy/nginx)', () => {
  const { runtime, seen } = recordingRuntime();
  let authz: HttpServer;
  let echo: EchoUpstream;
  let proxy: RunningProxy;

  beforeAll(async () => {
    authz = await startHttpServer(runtime, { listen: '127.0.0.1:0' }, { log: silentLogger(), maxHeaderBytes: 64 * 1024 });
    echo = await startEcho();
    const port = await freePort();
    const site = await shippedConfig('deploy/nginx/entra-authz.conf', {
      'entra-authz:9002': authz.address,
      'app:8080': `127.0.0.1:${echo.port}`,
      'listen 8080;': `listen 127.0.0.1:${port};`,
    });
    proxy = await runProxy(nginx.path as string, ['-p', '{dir}', '-c', '{dir}/nginx.conf', '-g', 'daemon off;'], { 'nginx.conf': mainConfig, 'entra-authz.conf': site }, port);
  });
  afterAll(async () => {
    await proxy?.stop();
    await echo?.close();
    await authz?.close(1000);
  });

  const get = (path: string, headers: [string, string][] = []) => send(`${proxy.url}${path}`, { headers });
  const echoed = (body: string): Echoed => JSON.parse(body) as Echoed;

  it('allows a good token and hands the caller identity to the upstream', async () => {
    const reply = await get('/orders/7?x=1', [['Authorization', 'Bearer good']]);
    expect(reply.status, proxy.output()).toBe(200);
    const up = echoed(reply.body);
    expect(up.url).toBe('/orders/7?x=1');
    expect(echoedHeader(up, 'x-entra-oid')).toEqual(['oid-good']);
    expect(echoedHeader(up, 'x-entra-roles')).toEqual(['Orders.Read']);
    expect(seen.at(-1)).toMatchObject({ ok: true, request: { method: 'GET', path: '/orders/7', query: 'x=1', host: '127.0.0.1' } });
  });

  it('denies with 401 and the Bearer challenge when no token is sent', async () => {
    const reply = await get('/orders');
    expect(reply.status).toBe(401);
    expect(reply.headers['www-authenticate']).toMatch(/^Bearer realm="orders"/);
    expect(reply.headers['x-entra-decision-id']).toMatch(/^d-/);
    expect(reply.body).not.toContain('"upstream"');
  });

  it('denies with 403 and an insufficient_scope challenge when a role is missing', async () => {
    const reply = await get('/admin/users', [['Authorization', 'Bearer good']]);
    expect(reply.status).toBe(403);
    expect(reply.headers['www-authenticate']).toMatch(/error="insufficient_scope"/);
    expect(reply.headers['x-upstream']).toBeUndefined();
  });

  it('replaces identity headers a client sends with what entra-authz decided, or removes them', async () => {
    const reply = await get('/public/info', [['X-Entra-Oid', 'spoofed'], ['X-Entra-Roles', 'Admin'], ['X-Entra-Decision-Id', 'forged']]);
    expect(reply.status).toBe(200);
    const up = echoed(reply.body);
    expect(echoedHeader(up, 'x-entra-oid')).toEqual([]);
    expect(echoedHeader(up, 'x-entra-roles')).toEqual([]);
    expect(echoedHeader(up, 'x-entra-decision-id')).not.toContain('forged');
  });

  it('lets rules see the path the client requested, not one it puts in X-Original-URI', async () => {
    const reply = await get('/admin/users', [['Authorization', 'Bearer good'], ['X-Original-URI', '/public/info'], ['X-Original-Method', 'HEAD'], ['X-Original-Host', 'other.example']]);
    expect(reply.status).toBe(403);
    expect(seen.at(-1)).toMatchObject({ ok: true, request: { path: '/admin/users', method: 'GET', host: '127.0.0.1' } });
  });

  it('sends the upstream exactly the URI the rules saw, dot segments included', async () => {
    const reply = await get('/public/%2e%2e/admin?x=1');
    expect(echoed(reply.body).url).toBe('/public/%2e%2e/admin?x=1');
    expect(seen.at(-1)).toMatchObject({ ok: true, request: { path: '/public/%2e%2e/admin', query: 'x=1' } });
  });
});
