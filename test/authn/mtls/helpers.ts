import { normalizeCheckRequest, type RequestView } from '../../../src/core/request.js';
import { buildPeerSettings, type PeerSettings } from '../../../src/authn/mtls/settings.js';
import { peerSourceSchema, type PeerSourceConfigInput } from '../../../src/config/schema-mtls.js';
import { createTestPki, type TestPki } from '../../fixtures/certs.js';

let pki: Promise<TestPki> | undefined;
/** Certificates generated once per test file (each file has its own module instance). */
export const getPki = (): Promise<TestPki> => (pki ??= createTestPki());

export interface PeerInput {
  readonly principal?: string;
  readonly certificate?: string;
  readonly headers?: Record<string, string>;
}

/** A RequestView built from an Envoy-shaped CheckRequest, as the server adapter would build it. */
export function checkRequest(input: PeerInput = {}): RequestView {
  const result = normalizeCheckRequest({
    attributes: {
      source: {
        address: { socket_address: { address: '10.1.2.3', port_value: 43210 } },
        principal: input.principal ?? '',
        certificate: input.certificate ?? '',
      },
      destination: { address: { socket_address: { address: '10.9.9.9', port_value: 8080 } } },
      request: {
        http: {
          id: '1',
          method: 'GET',
          path: '/orders',
          host: 'api.example.com',
          scheme: 'https',
          protocol: 'HTTP/2',
          headers: { ':method': 'GET', ':path': '/orders', ...input.headers },
        },
      },
    },
  });
  if (!result.ok) throw new Error(result.detail);
  return result.request;
}

export function settings(config: PeerSourceConfigInput = {}, caBundlePem?: string): PeerSettings {
  return buildPeerSettings(peerSourceSchema.parse(config), caBundlePem);
}
