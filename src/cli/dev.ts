import { entraUrl } from '../authn/entra/urls.js';
import { parseListen } from '../config/listen.js';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { DEMO, startEntraEmulator, type EntraEmulator } from '../dev/emulator.js';
import { createLogger } from '../telemetry/logger.js';
import { untilSignalled } from './lifecycle.js';
import { startService } from './serve.js';

/** Listen addresses of dev mode; each has a loopback default. */
export interface DevListen {
  readonly listen?: string | undefined;
  readonly httpListen?: string | undefined;
  readonly adminListen?: string | undefined;
}

/**
 * The embedded defaults of dev mode: the demo tenant and API of the emulator, both front doors
 * (gRPC and HTTP), and two rules — writes need `Orders.Write`, everything else `Orders.Read`
 * (or `Orders.Write`).
 */
export function devConfig(emulatorUrl: string, { listen = '127.0.0.1:9001', httpListen = '127.0.0.1:9002', adminListen = '127.0.0.1:9090' }: DevListen = {}): Config {
  return validateConfig(
    {
      server: { listen, shutdownGraceSeconds: 5, http: { listen: httpListen } },
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

/** Two aligned columns, indented by two spaces. */
function table(rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`).join('\n');
}

function banner(emulator: EntraEmulator, address: string, httpAddress: string, adminUrl: string): string {
  const { writer, reader } = DEMO.clients;
  const tokenUrl = entraUrl(emulator.url, DEMO.tenantId, 'token', '2.0');
  const tokenCmd = (c: typeof writer): string =>
    `curl -s ${tokenUrl} -d grant_type=client_credentials -d client_id=${c.clientId} ` +
    `-d client_secret=${c.clientSecret} -d scope=${DEMO.api.identifierUri}/.default | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token'`;
  // What Caddy or Traefik send for GET https://api.example.com/orders (docs/http-mode.md).
  const forwardAuth = `curl -i http://${httpAddress}/forward-auth -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Uri: /orders' -H 'X-Forwarded-Host: api.example.com'`;
  return `
entra-authz dev mode — NOT for production (demo tenant, public demo secrets)
Audit records (one JSON line per decision) follow on stdout; the operational log goes to stderr.

${table([
    ['ext_authz gRPC (Envoy → here)', address],
    ['HTTP forward auth (proxy → here)', `${httpAddress}  (docs/http-mode.md)`],
    ['admin (/healthz /readyz /metrics)', adminUrl],
    ['Entra emulator (authority)', emulator.url],
    ['tenant', DEMO.tenantId],
    ['API audience', `${DEMO.api.identifierUri}  or  ${DEMO.api.appId}`],
    ['demo clients', `${writer.displayName} (${writer.clientId}, secret ${writer.clientSecret}): Orders.Read + Orders.Write`],
    ['', `${reader.displayName} (${reader.clientId}, secret ${reader.clientSecret}): Orders.Read`],
  ])}

Try it (another terminal):
  TOKEN=$(${tokenCmd(reader)})
  npx entra-authz check --server ${address} --token "$TOKEN" --path /orders                               # allow
  npx entra-authz check --server ${address} --token "$TOKEN" --path /orders --context policy=orders-write # 403 missing_role
  npx entra-authz check --server ${address} --path /orders                                                # 401 token_missing
  ${forwardAuth} -H "Authorization: Bearer $TOKEN"  # HTTP mode: 200 allow
  ${forwardAuth}                                 # HTTP mode: 401 token_missing
  curl -s -X POST ${emulator.url}/_emulator/rotate                                                            # rotate signing keys
`;
}

export async function runDev(opts: DevListen & { emulatorListen?: string | undefined }): Promise<number> {
  const log = createLogger();
  const { host, port } = parseListen(opts.emulatorListen ?? '127.0.0.1:9400');
  const emulator = await startEntraEmulator({ host, port });
  const { app, telemetry, stop } = await startService(devConfig(emulator.url, opts), log);
  // devConfig always turns the HTTP listener on; the fallback only satisfies the type.
  console.log(banner(emulator, app.address, app.httpAddress ?? '(off)', telemetry.admin.url));
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
