import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCert {
  /** Leaf certificate PEM. */
  readonly certPem: string;
  /** PKCS#8 private key PEM. */
  readonly keyPem: string;
}

/**
 * A self-signed P-256 certificate made by the openssl CLI (the same tool scripts/gen-certs.sh uses).
 * `uris` become URI SANs (SPIFFE IDs), `dns` DNS SANs; 127.0.0.1 is always an IP SAN so loopback
 * TLS verifies.
 */
export function makeSelfSignedCert(options: { cn: string; dns?: string[]; uris?: string[] }): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'entra-authz-cert-'));
  try {
    const san = [...(options.uris ?? []).map((u) => `URI:${u}`), ...(options.dns ?? []).map((d) => `DNS:${d}`), 'IP:127.0.0.1'].join(',');
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-subj', `/O=entra-authz tests/CN=${options.cn}`,
        '-addext', `subjectAltName=${san}`,
        '-addext', 'extendedKeyUsage=serverAuth,clientAuth',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    return { certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
