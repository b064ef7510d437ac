import { expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { requireBinary } from '../support/external-binary.js';
import { describeProxyContract, type ProxyUnderTest } from './proxy-contract.js';
import { freePort } from '../support/loopback.js';
import { runProxy, shippedConfig } from './proxies.js';

const envoy = requireBinary('envoy');

const hostAndPort = (address: string): { host: string; port: string } => {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: address.slice(i + 1) };
};

/** The shipped config, pointed at the test's processes; optionally without its header_mutation filter. */
function shippedEnvoy(options: { withoutHeaderMutation?: boolean } = {}): ProxyUnderTest {
  return {
    binary: envoy,
    host: (port) => `127.0.0.1:${port}`,
    async start(binary, { authz, app, port }) {
      const a = hostAndPort(authz);
      const u = hostAndPort(app);
      let config = await shippedConfig('envoy/http-service.yaml', {
        'uri: http://entra-authz:9002': `uri: http://${authz}`,
        'address: entra-authz, port_value: 9002': `address: ${a.host}, port_value: ${a.port}`,
        'address: app, port_value: 8080': `address: ${u.host}, port_value: ${u.port}`,
        'address: 0.0.0.0, port_value: 8080': `address: 127.0.0.1, port_value: ${port}`,
        'port_value: 9901': `port_value: ${await freePort()}`,
      });
      if (options.withoutHeaderMutation) config = dropHeaderMutation(config);
      return runProxy(binary, ['-c', '{dir}/envoy.yaml', '--log-level', 'warn', '--disable-hot-restart'], { 'envoy.yaml': config }, port);
    },
  };
}

function dropHeaderMutation(text: string): string {
  const doc = parse(text) as { static_resources: { listeners: { filter_chains: { filters: { typed_config: { http_filters: { name: string }[] } }[] }[] }[] } };
  const hcm = doc.static_resources.listeners[0]?.filter_chains[0]?.filters[0]?.typed_config;
  if (!hcm) throw new Error('no http_connection_manager in envoy/http-service.yaml');
  hcm.http_filters = hcm.http_filters.filter((f) => f.name !== 'envoy.filters.http.header_mutation');
  return stringify(doc);
}

describeProxyContract(
  'Envoy ext_authz http_service in front of entra-authz (envoy/http-service.yaml)',
  shippedEnvoy(),
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

    it('hands entra-authz a repeated Authorization header joined into one value, which it refuses', async () => {
      const reply = await get('/orders', [['Authorization', 'Bearer good'], ['Authorization', 'Bearer other']]);
      expect(reply.status).toBe(400);
      expect(JSON.parse(reply.body)).toMatchObject({ error: 'token_multiple' });
      const seen = lastSeen();
      // Envoy joins the two lines into one value; the token reader refuses the comma (token_multiple).
      expect(seen?.ok && seen.request.headers.get('authorization')).toEqual(['Bearer good,Bearer other']);
    });
  },
);

// Istio's envoyExtAuthzHttp generates the ext_authz filter alone: entra-authz's
// x-envoy-auth-headers-to-remove is then all that strips client-sent identity headers.
describeProxyContract('Envoy http_service as Istio generates it (no header_mutation filter)', shippedEnvoy({ withoutHeaderMutation: true }));
