import { expect, it } from 'vitest';
import { requireBinary } from '../support/external-binary.js';
import { describeProxyContract } from './proxy-contract.js';
import { runProxy, shippedConfig } from './proxies.js';

// The shipped server block inside the smallest nginx.conf a test can run.
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

describeProxyContract(
  'nginx auth_request in front of entra-authz (deploy/nginx)',
  {
    binary: requireBinary('nginx'),
    host: () => '127.0.0.1',
    async start(binary, { authz, app, port }) {
      const site = await shippedConfig('deploy/nginx/entra-authz.conf', {
        'entra-authz:9002': authz,
        'app:8080': app,
        'listen 8080;': `listen 127.0.0.1:${port};`,
      });
      return runProxy(binary, ['-p', '{dir}', '-c', '{dir}/nginx.conf', '-g', 'daemon off;'], { 'nginx.conf': mainConfig, 'entra-authz.conf': site }, port);
    },
  },
  ({ get, lastSeen }) => {
    it('refuses a repeated Authorization header with 400 itself, before asking entra-authz', async () => {
      const before = lastSeen();
      const reply = await get('/orders', [['Authorization', 'Bearer good'], ['Authorization', 'Bearer other']]);
      expect(reply.status).toBe(400);
      expect(lastSeen()).toBe(before);
    });

    it('sends exactly one challenge on 401 (the 403 one is added by the config)', async () => {
      const reply = await get('/orders');
      expect(String(reply.headers['www-authenticate']).match(/Bearer /g)).toHaveLength(1);
    });
  },
);
