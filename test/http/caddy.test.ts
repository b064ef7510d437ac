import { expect, it } from 'vitest';
import { requireBinary } from '../support/external-binary.js';
import { describeProxyContract } from './proxy-contract.js';
import { runProxy, shippedConfig } from './proxies.js';

describeProxyContract(
  'Caddy forward_auth in front of entra-authz (deploy/caddy)',
  {
    binary: requireBinary('caddy'),
    host: (port) => `127.0.0.1:${port}`,
    async start(binary, { authz, app, port }) {
      const caddyfile = await shippedConfig('deploy/caddy/Caddyfile', {
        'entra-authz:9002': authz,
        'app:8080': app,
        ':8080 {': `http://127.0.0.1:${port} {`,
      });
      return runProxy(binary, ['run', '--config', '{dir}/Caddyfile', '--adapter', 'caddyfile'], { Caddyfile: caddyfile }, port);
    },
  },
  ({ get, lastSeen }) => {
    it('passes a deny through unchanged: status, challenge and the JSON body with the reason code', async () => {
      const reply = await get('/orders');
      expect(reply.status).toBe(401);
      expect(JSON.parse(reply.body)).toMatchObject({ error: 'token_missing' });
    });

    it('hands both lines of a repeated Authorization header to entra-authz, which refuses them', async () => {
      const reply = await get('/orders', [['Authorization', 'Bearer good'], ['Authorization', 'Bearer other']]);
      expect(reply.status).toBe(400);
      const seen = lastSeen();
      expect(seen?.ok && seen.request.headers.get('authorization')).toEqual(['Bearer good', 'Bearer other']);
    });
  },
);
