import { expect, it } from 'vitest';
import { requireBinary } from '../support/external-binary.js';
import { describeProxyContract } from './proxy-contract.js';
import { freePort, runProxy, shippedConfig } from './proxies.js';

const hostAndPort = (address: string): { host: string; port: string } => {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: address.slice(i + 1) };
};

describeProxyContract(
  'Envoy ext_authz http_service in front of entra-authz (envoy/http-service.yaml)',
  {
    binary: requireBinary('envoy'),
    host: (port) => `127.0.0.1:${port}`,
    async start(binary, { authz, app, port }) {
      const a = hostAndPort(authz);
      const u = hostAndPort(app);
      const config = await shippedConfig('envoy/http-service.yaml', {
        'uri: http://entra-authz:9002': `uri: http://${authz}`,
        'address: entra-authz, port_value: 9002': `address: ${a.host}, port_value: ${a.port}`,
        'address: app, port_value: 8080': `address: ${u.host}, port_value: ${u.port}`,
        'address: 0.0.0.0, port_value: 8080': `address: 127.0.0.1, port_value: ${port}`,
        'port_value: 9901': `port_value: ${await freePort()}`,
      });
      return runProxy(binary, ['-c', '{dir}/envoy.yaml', '--log-level', 'warn', '--base-id', String(port), '--disable-hot-restart'], { 'envoy.yaml': config }, port);
    },
  },
  ({ get, lastSeen }) => {
    it('fails closed when entra-authz cannot decide: its 503 is an error, and failure_mode_allow is false', async () => {
      const reply = await get('/unavailable', [['Authorization', 'Bearer good']]);
      expect(reply.status).toBe(403);
      expect(reply.headers['x-upstream']).toBeUndefined();
    });

    it('passes a deny through with its status, challenge and JSON body', async () => {
      const reply = await get('/orders');
      expect(reply.status).toBe(401);
      expect(JSON.parse(reply.body)).toMatchObject({ error: 'token_missing' });
    });

    it('hands entra-authz a repeated Authorization header, which it refuses', async () => {
      const reply = await get('/orders', [['Authorization', 'Bearer good'], ['Authorization', 'Bearer other']]);
      expect(reply.status).toBe(401);
      const seen = lastSeen();
      expect(seen?.ok && seen.request.headers.get('authorization')?.join(',')).toBe('Bearer good,Bearer other');
    });
  },
);
