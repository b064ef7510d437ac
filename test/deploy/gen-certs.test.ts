import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSelfSignedCert } from '../client/tls-fixture.js';
import { genCertIdentities, runGenCerts } from './helpers.js';

let dir: string;
let firstOutput: string;
const read = (name: string): string => readFileSync(join(dir, name), 'utf8');

beforeAll(() => {
  ({ dir, output: firstOutput } = runGenCerts());
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('scripts/gen-certs.sh', () => {
  it('issues one CA-signed leaf per workload with exactly one SPIFFE URI SAN and its DNS names', () => {
    const ca = new X509Certificate(read('ca.crt'));
    expect(ca.ca).toBe(true);
    for (const id of genCertIdentities()) {
      const leaf = new X509Certificate(read(`${id.name}.crt`));
      expect(leaf.ca, id.name).toBe(false);
      expect(leaf.checkIssued(ca), id.name).toBe(true);
      expect(leaf.verify(ca.publicKey), id.name).toBe(true);
      const sans = (leaf.subjectAltName ?? '').split(', ');
      expect(sans.filter((s) => s.startsWith('URI:')), id.name).toEqual([`URI:${id.spiffeId}`]);
      expect(sans.filter((s) => s.startsWith('DNS:')), id.name).toEqual(id.dns.map((d) => `DNS:${d}`));
      expect(leaf.keyUsage, id.name).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
      expect(leaf.checkPrivateKey(createPrivateKey(read(`${id.name}.key`))), id.name).toBe(true);
    }
    expect(genCertIdentities().map((i) => i.spiffeId)).toEqual([
      'spiffe://entra-authz.demo/ns/edge/sa/envoy',
      'spiffe://entra-authz.demo/ns/authz/sa/entra-authz',
      'spiffe://entra-authz.demo/ns/demo/sa/demo-client',
      'spiffe://entra-authz.demo/ns/demo/sa/orders',
    ]);
  });

  it('keeps private keys private and leaves no CA signing key behind', () => {
    for (const id of genCertIdentities()) expect(statSync(join(dir, `${id.name}.key`)).mode & 0o077, id.name).toBe(0);
    expect(() => statSync(join(dir, 'ca.key'))).toThrow();
    expect(firstOutput).toContain('wrote');
  });

  it('does nothing when the certificates are current, and regenerates with FORCE=1', () => {
    const before = read('envoy.crt');
    expect(runGenCerts({}, dir).output).toContain('are current');
    expect(read('envoy.crt')).toBe(before);
    runGenCerts({ FORCE: '1' }, dir);
    expect(read('envoy.crt')).not.toBe(before);
  });

  it('lets Envoy and entra-authz complete mutual TLS, and refuses a client from another CA', async () => {
    const server = createServer({
      cert: read('entra-authz.crt'),
      key: read('entra-authz.key'),
      ca: read('ca.crt'),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      const peer = socket.getPeerX509Certificate();
      socket.end(peer?.subjectAltName ?? '');
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const dial = (cert: string, key: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, servername: 'entra-authz', cert, key, ca: read('ca.crt'), ALPNProtocols: ['h2'] });
        let data = '';
        socket.on('data', (d: Buffer) => (data += d.toString()));
        socket.on('end', () => resolve(data));
        socket.on('close', () => resolve(data));
        socket.on('error', reject);
      });
    try {
      expect(await dial(read('envoy.crt'), read('envoy.key'))).toContain('URI:spiffe://entra-authz.demo/ns/edge/sa/envoy');
      const stranger = makeSelfSignedCert({ cn: 'stranger', uris: ['spiffe://entra-authz.demo/ns/edge/sa/envoy'] });
      const outcome = await dial(stranger.certPem, stranger.keyPem).then((data) => `data:${data}`, (err: Error) => `error:${err.message}`);
      expect(outcome).not.toContain('URI:spiffe');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
