import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, service as healthService } from 'grpc-health-check';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tlsListenerSchema, type TlsListenerConfigInput } from '../../src/config/schema-mtls.js';
import { createTlsListener, type TlsListener, type TlsListenerOptions, type TlsReloadEvent } from '../../src/server/tls.js';
import { createLeaf, createTestPki, ENVOY_SPIFFE, type CertMaterial, type TestPki } from '../fixtures/certs.js';

const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

let dir: string;
let files: { cert: string; key: string; ca: string };
const cleanups: (() => void | Promise<void>)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'entra-authz-tls-'));
  files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
  await writeFile(files.cert, pki.server.certPem);
  await writeFile(files.key, pki.server.keyPem);
  await writeFile(files.ca, pki.ca.certPem);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(dir, { recursive: true, force: true });
});

interface Started {
  readonly listener: TlsListener;
  readonly port: number;
}

async function start(config: Partial<TlsListenerConfigInput>, options: TlsListenerOptions = {}): Promise<Started> {
  const listener = await createTlsListener(tlsListenerSchema.parse({ certFile: files.cert, keyFile: files.key, ...config }), {
    reloadIntervalMs: 60_000,
    ...options,
  });
  cleanups.push(() => listener.close());
  const server = new grpc.Server();
  new HealthImplementation({ '': 'SERVING' }).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', listener.credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return { listener, port };
}

interface Client {
  check(): Promise<string>;
  /** Fingerprint (lower-case hex, no colons) of the server certificate seen in the last handshake. */
  seen(): string | undefined;
}

function connect(port: number, identity?: CertMaterial): Client {
  let seen: string | undefined;
  const credentials = grpc.credentials.createSsl(
    Buffer.from(pki.ca.certPem),
    identity ? Buffer.from(identity.keyPem) : null,
    identity ? Buffer.from(identity.certPem) : null,
    {
      checkServerIdentity: (host: string, cert: PeerCertificate) => {
        seen = cert.fingerprint256.replace(/:/g, '').toLowerCase();
        return checkServerIdentity(host, cert);
      },
    },
  );
  // Connect to the IP, verify and send SNI for the DNS name (an IP as SNI is deprecated in Node).
  const client = new HealthClient(`127.0.0.1:${port}`, credentials, { 'grpc.ssl_target_name_override': 'localhost' });
  cleanups.push(() => client.close());
  return {
    seen: () => seen,
    check: () =>
      new Promise<string>((resolve, reject) => {
        client.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (req: Buffer) => req,
          (res: Buffer) => res,
          Buffer.alloc(0),
          { deadline: Date.now() + 5000 },
          (err: grpc.ServiceError | null, res?: Buffer) => {
            if (err) reject(err);
            // HealthCheckResponse{status: SERVING} is field 1 varint 1.
            else resolve(res?.equals(Buffer.from([0x08, 0x01])) ? 'SERVING' : `unexpected ${res?.toString('hex')}`);
          },
        );
      }),
  };
}

const codeOf = async (p: Promise<unknown>): Promise<number> => {
  try {
    await p;
    return grpc.status.OK;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
};

/** Resolves on the next reload (or error) event: waits for the watcher, never for a fixed time. */
function events() {
  const reloads: TlsReloadEvent[] = [];
  const errors: string[] = [];
  let wake: (() => void) | undefined;
  const notify = () => wake?.();
  return {
    reloads,
    errors,
    options: {
      onReload: (e: TlsReloadEvent) => {
        reloads.push(e);
        notify();
      },
      onError: (p: string) => {
        errors.push(p);
        notify();
      },
    } satisfies TlsListenerOptions,
    async until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200).unref(); // bounded wake-up so the deadline is honoured
        });
      }
    },
  };
}

describe('TLS listener', () => {
  it('serves TLS with the configured certificate to clients without certificates when none are required', async () => {
    const { port, listener } = await start({});
    const client = connect(port);
    expect(await client.check()).toBe('SERVING');
    expect(client.seen()).toBe(pki.server.hashHex);
    expect(listener.current().fingerprintSha256).toBe(pki.server.hashHex);
  });

  it('refuses a plaintext client', async () => {
    const { port } = await start({});
    const client = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const code = await codeOf(
      new Promise((resolve, reject) =>
        client.makeUnaryRequest('/grpc.health.v1.Health/Check', (r: Buffer) => r, (r: Buffer) => r, Buffer.alloc(0), { deadline: Date.now() + 3000 }, (e: unknown, r: unknown) =>
          e ? reject(e) : resolve(r),
        ),
      ),
    );
    expect(code).not.toBe(grpc.status.OK);
  });

  it('requires a client certificate issued by the configured CA', async () => {
    const { port } = await start({ caFile: files.ca, requireClientCert: true });
    expect(await codeOf(connect(port).check())).toBe(grpc.status.UNAVAILABLE);
    expect(await codeOf(connect(port, pki.foreign).check())).toBe(grpc.status.UNAVAILABLE);
    expect(await codeOf(connect(port, pki.expired).check())).toBe(grpc.status.UNAVAILABLE);
    expect(await connect(port, pki.envoyClient).check()).toBe('SERVING');
  });

  it('admits only allow-listed client identities', async () => {
    const refused: string[] = [];
    const { port } = await start(
      { caFile: files.ca, requireClientCert: true, allowedClients: [ENVOY_SPIFFE, '*.mesh.example.com'] },
      { onClientRefused: (d) => refused.push(d) },
    );
    expect(await connect(port, pki.envoyClient).check()).toBe('SERVING');
    const dnsClient = await createLeaf(pki.ca, { dns: ['gateway.mesh.example.com'] });
    expect(await connect(port, dnsClient).check()).toBe('SERVING');
    const checkoutClient = connect(port, pki.checkout);
    expect(await codeOf(checkoutClient.check())).toBe(grpc.status.PERMISSION_DENIED);
    // Cached decision on the same connection: still refused.
    expect(await codeOf(checkoutClient.check())).toBe(grpc.status.PERMISSION_DENIED);
    expect(refused[0]).toMatch(/spiffe:\/\/cluster\.local\/ns\/shop\/sa\/checkout/);
    expect(await codeOf(connect(port).check())).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses to start with a key that does not match the certificate, or unreadable files', async () => {
    await writeFile(files.key, pki.checkout.keyPem);
    await expect(createTlsListener(tlsListenerSchema.parse({ certFile: files.cert, keyFile: files.key }))).rejects.toThrow(/does not match/);
    await expect(createTlsListener(tlsListenerSchema.parse({ certFile: join(dir, 'nope.crt'), keyFile: files.key }))).rejects.toThrow(/cannot read/);
  });
});

describe('TLS certificate rotation', () => {
  it('serves a rotated certificate to new connections while existing connections and their calls continue', async () => {
    const ev = events();
    const { port, listener } = await start({ caFile: files.ca, requireClientCert: true }, { reloadIntervalMs: 20, ...ev.options });
    const longLived = connect(port, pki.envoyClient);
    expect(await longLived.check()).toBe('SERVING');

    const rotated = await createLeaf(pki.ca, { subject: 'CN=localhost-rotated', dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });
    // Checks keep flowing on the established connection throughout the rotation.
    let stop = false;
    const background = (async () => {
      let n = 0;
      while (!stop) {
        expect(await longLived.check()).toBe('SERVING');
        n++;
      }
      return n;
    })();

    // Key first, then certificate: in between the pair does not match and must not be applied.
    await writeFile(files.key, rotated.keyPem);
    await writeFile(files.cert, rotated.certPem);
    await ev.until(() => ev.reloads.length > 0, 'the rotated certificate to be applied');
    expect(ev.reloads[0]).toMatchObject({ changed: ['certificate'], certificate: { fingerprintSha256: rotated.hashHex } });
    expect(listener.current().fingerprintSha256).toBe(rotated.hashHex);

    const fresh = connect(port, pki.envoyClient);
    expect(await fresh.check()).toBe('SERVING');
    expect(fresh.seen()).toBe(rotated.hashHex);

    stop = true;
    expect(await background).toBeGreaterThan(0);
    expect(await longLived.check()).toBe('SERVING');
  });

  it('keeps serving the last good certificate when the files on disk are half-written or broken', async () => {
    const ev = events();
    const { port, listener } = await start({}, ev.options);
    const rotated = await createLeaf(pki.ca, { dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });

    await writeFile(files.cert, rotated.certPem); // the key is still the old one
    expect(await listener.reload()).toBe(false);
    expect(ev.errors).toEqual(['the private key does not match the certificate']);
    const during = connect(port);
    expect(await during.check()).toBe('SERVING');
    expect(during.seen()).toBe(pki.server.hashHex);

    await writeFile(files.key, 'garbage');
    expect(await listener.reload()).toBe(false);
    expect(ev.errors[1]).toMatch(/no parsable/);

    await writeFile(files.key, rotated.keyPem);
    expect(await listener.reload()).toBe(true);
    const after = connect(port);
    expect(await after.check()).toBe('SERVING');
    expect(after.seen()).toBe(rotated.hashHex);
    expect(await listener.reload()).toBe(false); // unchanged files: nothing to do
  });

  it('picks up a new client CA so clients of the new CA are admitted', async () => {
    const ev = events();
    const { port, listener } = await start({ caFile: files.ca, requireClientCert: true }, ev.options);
    const otherClient = await createLeaf(pki.otherCa, { uris: [ENVOY_SPIFFE] });
    expect(await codeOf(connect(port, otherClient).check())).toBe(grpc.status.UNAVAILABLE);

    await writeFile(files.ca, pki.ca.certPem + pki.otherCa.certPem);
    expect(await listener.reload()).toBe(true);
    expect(ev.reloads[0]?.changed).toEqual(['ca']);
    expect(await connect(port, otherClient).check()).toBe('SERVING');
    expect(await connect(port, pki.envoyClient).check()).toBe('SERVING');
  });
});
