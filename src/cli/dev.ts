import { entraUrl } from '../authn/entra/urls.js';
import { parseListen } from '../config/listen.js';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { DEMO, startEntraEmulator, type EntraEmulator } from '../dev/emulator.js';
import { createLogger } from '../telemetry/logger.js';
import { untilSignalled } from './lifecycle.js';
import { startService } from './serve.js';

/**
 * The embedded defaults of dev mode: the demo tenant and API of the emulator, and two rules —
 * writes need `Orders.Write`, everything else `Orders.Read` (or `Orders.Write`).
 */
export function devConfig(emulatorUrl: string, listen = '127.0.0.1:9001', adminListen = '127.0.0.1:9090'): Config {
  return validateConfig(
    {
      server: { listen, shutdownGraceSeconds: 5 },
      telemetry: { admin: { listen: adminListen } },
      entra: {
        authority: emulatorUrl,
        tenants: [DEMO.tenantId],
        audiences: [DEMO.api.identifierUri, DEMO.api.appId],
      },
      rules: [
        {
          name: 'orders-write',
          match: { contextExtensions: { policy: 'orders-write' } },
          require: { roles: { anyOf: ['Orders.Write'] } },
        },
        { name: 'orders-read', require: { roles: { anyOf: ['Orders.Read', 'Orders.Write'] } } },
      ],
    },
    'dev defaults',
  );
}

function banner(emulator: EntraEmulator, address: string, adminUrl: string): string {
  const { writer, reader } = DEMO.clients;
  const tokenUrl = entraUrl(emulator.url, DEMO.tenantId, 'token', '2.0');
  const tokenCmd = (c: typeof writer): string =>
    `curl -s ${tokenUrl} -d grant_type=client_credentials -d client_id=${c.clientId} ` +
    `-d client_secret=${c.clientSecret} -d scope=${DEMO.api.identifierUri}/.default | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token'`;
  return `
entra-authz dev mode — NOT for production (demo tenant, public demo secrets)
Audit records (one JSON line per decision) follow on stdout; the operational log goes to stderr.

  ext_authz gRPC (Envoy → here)   ${address}
  admin (/healthz /readyz /metrics) ${adminUrl}
  Entra emulator (authority)      ${emulator.url}
  tenant                          ${DEMO.tenantId}
  API audience                    ${DEMO.api.identifierUri}  or  ${DEMO.api.appId}
  demo clients                    ${writer.displayName} (${writer.clientId}, secret ${writer.clientSecret}): Orders.Read + Orders.Write
                                  ${reader.displayName} (${reader.clientId}, secret ${reader.clientSecret}): Orders.Read

Try it (another terminal):
  TOKEN=$(${tokenCmd(reader)})
  npx tsx src/cli.ts check --server ${address} --token "$TOKEN" --path /orders                               # allow
  npx tsx src/cli.ts check --server ${address} --token "$TOKEN" --path /orders --context policy=orders-write # 403 missing_role
  npx tsx src/cli.ts check --server ${address} --path /orders                                                # 401 token_missing
  curl -s -X POST ${emulator.url}/_emulator/rotate                                                            # rotate signing keys
`;
}

export async function runDev(opts: { listen?: string | undefined; emulatorListen?: string | undefined; adminListen?: string | undefined }): Promise<number> {
  const log = createLogger();
  const { host, port } = parseListen(opts.emulatorListen ?? '127.0.0.1:9400');
  const emulator = await startEntraEmulator({ host, port });
  const { app, telemetry, stop } = await startService(devConfig(emulator.url, opts.listen, opts.adminListen), log);
  console.log(banner(emulator, app.address, telemetry.admin.url));
  return untilSignalled(log, async () => {
    await stop();
    await emulator.close();
  });
}

export async function runEmulator(opts: { listen: string; publicUrl?: string | undefined }): Promise<number> {
  const log = createLogger();
  const { host, port } = parseListen(opts.listen);
  const emulator = await startEntraEmulator({ host, port, ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}) });
  log.info({ url: emulator.url, tenants: emulator.tenants }, 'Entra emulator listening');
  return untilSignalled(log, () => emulator.close());
}
