import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startService } from '../../src/cli/serve.js';
import { validateConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const TENANT = '11111111-2222-4333-8444-555555555555';

/** A port on loopback that refuses connections: bound once, then released. */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('readiness when signing keys cannot be loaded', () => {
  it('answers /readyz 503 saying why each key set is missing', async () => {
    const config = validateConfig({
      server: { listen: '127.0.0.1:0' },
      telemetry: { admin: { listen: '127.0.0.1:0' }, audit: { sink: 'off' } },
      entra: { authority: `http://127.0.0.1:${await refusedPort()}`, tenants: [TENANT], audiences: ['api://orders'], tokenVersions: ['2.0'] },
      rules: [{ name: 'all', allowAnonymous: true }],
    });
    const service = await startService(config, silentLogger());
    try {
      await expect
        .poll(async () => {
          const res = await fetch(`${service.telemetry.admin.url}/readyz`);
          return { status: res.status, body: (await res.json()) as { detail?: { keys?: string[] } } };
        })
        .toMatchObject({ status: 503, body: { detail: { keys: [expect.stringMatching(new RegExp(`^tenant ${TENANT} v2.0: no keys \\(connection_refused: `))] } } });
    } finally {
      await service.stop();
    }
  });
});
