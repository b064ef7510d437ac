import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPeerSettings } from '../../../src/runtime/peer-settings.js';
import { ConfigError } from '../../../src/config/load.js';
import { peerSourceSchema, tlsListenerSchema } from '../../../src/config/schema-mtls.js';
import { getPki } from './helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'entra-authz-peer-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('peer source configuration', () => {
  it('defaults to no CA bundle and XFCC ignored', () => {
    expect(peerSourceSchema.parse({})).toEqual({ xfcc: { trusted: false, proxies: [] } });
  });

  it('refuses trusting XFCC without naming the proxies, and non-URI proxies', () => {
    expect(peerSourceSchema.safeParse({ xfcc: { trusted: true } }).success).toBe(false);
    expect(peerSourceSchema.safeParse({ xfcc: { trusted: true, proxies: ['front proxy'] } }).success).toBe(false);
    expect(peerSourceSchema.safeParse({ xfcc: { trusted: true, proxies: ['spiffe://cluster.local/ns/edge/sa/front-proxy'] } }).success).toBe(true);
  });

  it('reads and parses the CA bundle once at load', async () => {
    const { ca, otherCa } = await getPki();
    const file = join(dir, 'bundle.pem');
    await writeFile(file, `# two roots\n${ca.certPem}\n${otherCa.certPem}`);
    const s = await loadPeerSettings(peerSourceSchema.parse({ caBundleFile: file }));
    expect(s.anchors.map((a) => a.fingerprintSha256)).toEqual([ca.hashHex, otherCa.hashHex]);
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('reports a missing or unusable bundle as a ConfigError at the option path', async () => {
    const { checkout } = await getPki();
    await expect(loadPeerSettings(peerSourceSchema.parse({ caBundleFile: join(dir, 'missing.pem') }))).rejects.toBeInstanceOf(ConfigError);
    const leafFile = join(dir, 'leaf.pem');
    await writeFile(leafFile, checkout.certPem);
    const err = await loadPeerSettings(peerSourceSchema.parse({ caBundleFile: leafFile }), 'mtls.peer').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems[0]).toMatchObject({ path: 'mtls.peer.caBundleFile' });
    expect((err as ConfigError).problems[0]?.message).toMatch(/not a CA certificate/);
  });
});

describe('TLS listener configuration', () => {
  const base = { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' };

  it('defaults to server TLS without client certificates, reloading every 10 s', () => {
    expect(tlsListenerSchema.parse(base)).toEqual({ ...base, requireClientCert: false, reloadIntervalSeconds: 10 });
  });

  it('refuses required client certificates without a CA, and an allow-list without required certificates', () => {
    expect(tlsListenerSchema.safeParse({ ...base, requireClientCert: true }).success).toBe(false);
    expect(tlsListenerSchema.safeParse({ ...base, caFile: '/ca.pem', allowedClients: ['spiffe://a/b'] }).success).toBe(false);
    expect(
      tlsListenerSchema.safeParse({ ...base, caFile: '/ca.pem', requireClientCert: true, allowedClients: ['spiffe://a/b', '*.mesh.example.com'] }).success,
    ).toBe(true);
  });

  it('refuses impossible allow-list entries and unknown keys', () => {
    const withClients = (allowedClients: string[]) => ({ ...base, caFile: '/ca.pem', requireClientCert: true, allowedClients });
    expect(tlsListenerSchema.safeParse(withClients(['spiffe://*/x'])).success).toBe(false);
    expect(tlsListenerSchema.safeParse(withClients(['not a name'])).success).toBe(false);
    expect(tlsListenerSchema.safeParse({ ...base, certfile: '/x' }).success).toBe(false);
  });
});
