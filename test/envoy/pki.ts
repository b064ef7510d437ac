import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, createLeaf, type CertMaterial } from '../fixtures/certs.js';
import { genCertIdentities } from '../deploy/helpers.js';

/** The demo's workload names (scripts/gen-certs.sh): envoy, entra-authz, demo-client, orders. */
export type DemoIdentity = 'envoy' | 'entra-authz' | 'demo-client' | 'orders';

export interface DemoPki {
  readonly dir: string;
  readonly ca: CertMaterial;
  readonly leaves: Readonly<Record<DemoIdentity, CertMaterial>>;
  readonly spiffeId: (name: DemoIdentity) => string;
  /** Issues a new certificate and key for `name` from the same CA and writes it over the old files. */
  reissue(name: DemoIdentity): Promise<CertMaterial>;
}

/**
 * The same files gen-certs.sh writes (`ca.crt`, `<name>.crt`, `<name>.key`, same SPIFFE IDs and
 * DNS SANs), generated in-process so a test can also reissue a leaf from the same CA.
 */
export async function writeDemoPki(dir: string): Promise<DemoPki> {
  const identities = genCertIdentities();
  const ca = await createCa('entra-authz demo CA');
  writeFileSync(join(dir, 'ca.crt'), ca.certPem);
  const issue = async (name: DemoIdentity): Promise<CertMaterial> => {
    const id = identities.find((i) => i.name === name);
    if (!id) throw new Error(`gen-certs.sh issues no ${name}`);
    const leaf = await createLeaf(ca, { subject: `CN=${name},O=entra-authz demo`, uris: [id.spiffeId], dns: id.dns, usage: 'both' });
    writeFileSync(join(dir, `${name}.crt`), leaf.certPem);
    writeFileSync(join(dir, `${name}.key`), leaf.keyPem, { mode: 0o600 });
    return leaf;
  };
  const names: DemoIdentity[] = ['envoy', 'entra-authz', 'demo-client', 'orders'];
  const issued = await Promise.all(names.map(issue));
  const leaves = Object.fromEntries(names.map((n, i) => [n, issued[i] as CertMaterial])) as Record<DemoIdentity, CertMaterial>;
  return {
    dir,
    ca,
    leaves,
    spiffeId: (name) => identities.find((i) => i.name === name)?.spiffeId ?? '',
    reissue: async (name) => (leaves[name] = await issue(name)),
  };
}
