import { readFile } from 'node:fs/promises';
import { buildPeerSettings, type PeerSettings } from '../authn/mtls/index.js';
import { ConfigError } from '../config/errors.js';
import type { PeerSourceConfig } from '../config/schema-mtls.js';

/** Reads the CA bundle (if any) and builds the peer settings; rejects with ConfigError. */
export async function loadPeerSettings(config: PeerSourceConfig, path = 'peer', source = 'config'): Promise<PeerSettings> {
  let pem: string | undefined;
  if (config.caBundleFile !== undefined) {
    try {
      pem = await readFile(config.caBundleFile, 'utf8');
    } catch (err) {
      throw new ConfigError(source, [{ path: `${path}.caBundleFile`, message: (err as Error).message }]);
    }
  }
  return buildPeerSettings(config, pem, path, source);
}
