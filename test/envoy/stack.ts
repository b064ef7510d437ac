import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parse } from 'yaml';
import { DEMO, startEntraEmulator, type EntraEmulator } from '../../src/dev/emulator.js';
import { obj, repoPath, type Obj } from '../deploy/helpers.js';
import { grpcCall, type ClientTls } from './clients.js';
import { writeDemoPki, type DemoIdentity, type DemoPki } from './pki.js';
import { startEntraAuthz, startEnvoy, type RunningEntraAuthz, type RunningEnvoy } from './processes.js';
import { renderEnvoyConfig } from './render.js';
import { startEchoUpstream, type EchoUpstream } from '../support/echo.js';
import { freePort } from '../support/loopback.js';

/** The entra-authz configuration the compose stack ships, which the Envoy configs are made for. */
const COMPOSE_CONFIG = ['deploy', 'compose', 'entra-authz.yaml'] as const;

/**
 * deploy/compose/entra-authz.yaml moved to loopback: the emulator as authority, port 0, the
 * test's certificates, admin on loopback; rules and response settings as shipped. `tls: false`
 * drops `server.tls`, as the sidecar layout runs it.
 */
export function composeAuthzConfig(opts: { authority: string; certDir: string; tls: boolean }): Obj {
  const doc = obj(parse(readFileSync(repoPath(...COMPOSE_CONFIG), 'utf8')));
  const server = obj(doc['server']);
  server['listen'] = '127.0.0.1:0';
  server['shutdownGraceSeconds'] = 1;
  if (opts.tls) {
    const tls = obj(server['tls']);
    for (const key of ['certFile', 'keyFile', 'caFile']) tls[key] = join(opts.certDir, basename(String(tls[key])));
  } else delete server['tls'];
  obj(doc['entra'])['authority'] = opts.authority;
  obj(doc['telemetry'])['admin'] = { listen: '127.0.0.1:0' };
  return doc;
}

export interface EnvoyStack {
  readonly dir: string;
  readonly pki: DemoPki;
  readonly emulator: EntraEmulator;
  readonly upstream: EchoUpstream;
  readonly authz: RunningEntraAuthz;
  readonly envoy: RunningEnvoy;
  /** The port of Envoy's mTLS listener. */
  readonly port: number;
  /** The name of Envoy's mTLS listener in the config. */
  readonly listener: string;
  /** Another Envoy on the same config, cluster ports or bootstrap changed; closed with the stack. */
  startEnvoy(opts?: EnvoyOptions): Promise<RunningEnvoy>;
  /** A client's TLS identity (its `<name>.crt`/`.key` and the CA). */
  tlsAs(name: DemoIdentity): ClientTls;
  close(): Promise<void>;
}

export interface EnvoyOptions {
  /** Cluster ports to use instead of the started processes' (e.g. a closed port). */
  readonly clusterPorts?: Record<string, number>;
  /** Changes to the rendered Envoy bootstrap (failure-mode experiments only). */
  readonly envoy?: (bootstrap: Obj) => void;
}

export interface StackOptions extends EnvoyOptions {
  readonly envoyBin: string;
  /** `envoy.yaml` (front proxy, mTLS to entra-authz) or `sidecar.yaml` (plain HTTP/2 on loopback). */
  readonly file: 'envoy.yaml' | 'sidecar.yaml';
  /** Changes to the entra-authz configuration before it starts. */
  readonly authz?: (config: Obj) => void;
  readonly authzEnv?: Record<string, string>;
}

/**
 * The first checks of a fresh entra-authz process compile its code paths; on a busy machine they
 * can outlast the sidecar's 0.25 s ext_authz timeout. Ask until entra-authz itself answers both a
 * denial (no token) and, three times in a row, an allow, so tests measure behaviour, not warm-up.
 */
async function warmUp(port: number, tls: ClientTls, token: string): Promise<void> {
  let allowedInARow = 0;
  let denied = false;
  for (let attempt = 0; attempt < 60 && !(denied && allowedInARow >= 3); attempt++) {
    const anonymous = await grpcCall(port, tls, 'GetOrder');
    denied ||= !anonymous.ok && anonymous.code === 16;
    const allowed = await grpcCall(port, tls, 'GetOrder', { authorization: `Bearer ${token}` });
    allowedInARow = allowed.ok ? allowedInARow + 1 : 0;
  }
  if (!(denied && allowedInARow >= 3)) throw new Error('entra-authz never answered steadily through Envoy');
}

/** Envoy from a shipped config, entra-authz as its own process, the emulator and an echo upstream. */
export async function startStack(opts: StackOptions): Promise<EnvoyStack> {
  const dir = mkdtempSync(join(tmpdir(), 'entra-authz-e2e-'));
  const cleanup: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const close = async (): Promise<void> => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  };
  try {
    const pki = await writeDemoPki(dir);
    const emulator = await startEntraEmulator();
    cleanup.push(() => emulator.close());
    const upstream = await startEchoUpstream({ http2: true });
    cleanup.push(() => upstream.close());
    const config = composeAuthzConfig({ authority: emulator.url, certDir: dir, tls: opts.file === 'envoy.yaml' });
    opts.authz?.(config);
    const authz = await startEntraAuthz(config, opts.authzEnv);
    cleanup.push(() => authz.close());
    const otelPort = await freePort();
    const extraEnvoy = async (extra: EnvoyOptions = {}): Promise<RunningEnvoy> => {
      for (let attempt = 1; ; attempt++) {
        // The sidecar's prometheus listener proxies to admin, so admin needs a port known in
        // advance; another process may take it between picking and binding: then pick again.
        const adminPort = await freePort();
        const bootstrap = renderEnvoyConfig(opts.file, {
          certDir: dir,
          adminPort,
          clusterPorts: {
            entra_authz: authz.port,
            [opts.file === 'envoy.yaml' ? 'orders' : 'local_app']: upstream.port,
            otel_collector: otelPort,
            envoy_admin: adminPort,
            ...extra.clusterPorts,
          },
        });
        extra.envoy?.(bootstrap);
        try {
          const started = await startEnvoy(opts.envoyBin, bootstrap);
          cleanup.push(() => started.close());
          return started;
        } catch (err) {
          if (attempt >= 3 || !String(err).includes('Address already in use')) throw err;
        }
      }
    };
    const envoy = await extraEnvoy(opts);
    const listener = opts.file === 'envoy.yaml' ? 'ingress_mtls' : 'inbound_mtls';
    const tlsAs = (name: DemoIdentity): ClientTls => ({ ca: pki.ca.certPem, cert: pki.leaves[name].certPem, key: pki.leaves[name].keyPem });
    await warmUp(envoy.listenerPort(listener), tlsAs('demo-client'), await emulator.issueToken({ appId: DEMO.clients.writer.clientId }));
    return {
      dir,
      pki,
      emulator,
      upstream,
      authz,
      envoy,
      port: envoy.listenerPort(listener),
      listener,
      startEnvoy: extraEnvoy,
      tlsAs,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
