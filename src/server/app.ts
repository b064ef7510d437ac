import { randomUUID } from 'node:crypto';
import { Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { createConfigHolder, entraChanged } from '../config/reload.js';
import { formatListen, parseListen } from '../config/listen.js';
import type { Config } from '../config/schema.js';
import { planResponse, type PeerFacts, type ResponseSettings } from '../core/response.js';
import { createPeerResolver, loadPeerSettings, peerMetadata, type PeerIdentity } from '../authn/mtls/index.js';
import { NOOP_CHECK_TRACER } from '../telemetry/tracing.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { createTlsListener, type TlsListener, type TlsListenerOptions } from './tls.js';
import { createDecider, type CheckOutcome } from '../engine/decide.js';
import { createKeyStore } from '../authn/entra/keystore.js';
import { createTokenVerifier } from '../authn/entra/verifier.js';
import { createCachingVerifier } from '../cache/token-cache.js';
import { toCheckResponse } from './check-response.js';
import { loadAuthorizationService } from './protos.js';
import type { Logger } from './logger.js';

export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';

export interface AppDeps {
  readonly fetch?: typeof globalThis.fetch;
  /** Milliseconds since the epoch; tests freeze it. */
  readonly now?: () => number;
  readonly log: Logger;
  readonly newId?: () => string;
  /** Spans, metrics and audit records; none when omitted (tests of the decision path alone). */
  readonly telemetry?: Telemetry;
  /** Overrides for the TLS listener (tests poll certificate files faster). */
  readonly tls?: Pick<TlsListenerOptions, 'reloadIntervalMs'>;
}

export interface RunningApp {
  /** host:port the gRPC listener is bound to (the real port when 0 was configured). */
  readonly address: string;
  /** True once signing keys for every configured tenant are loaded, until shutdown begins. */
  isServing(): boolean;
  /** Stops accepting, lets in-flight checks finish within the grace period, then closes. */
  close(graceMs?: number): Promise<void>;
  /**
   * Installs a new, already validated configuration (hot reload, see src/config/reload.ts): checks
   * in flight finish on the configuration they started with. The key store is rebuilt only when
   * the `entra` section changed, and the new one must load before it replaces the old; if it
   * cannot, this rejects and the running configuration stays.
   */
  reload(config: Config): Promise<void>;
  /** Re-reads the listener's certificate files now (SIGHUP); resolves true when they changed. */
  reloadCertificates(): Promise<boolean>;
}

function peerFacts(peer: PeerIdentity | undefined): PeerFacts | undefined {
  return peer && { principal: peer.principal, fingerprintSha256: peer.fingerprintSha256, metadata: peerMetadata(peer) };
}

export function responseSettings(config: Config): ResponseSettings {
  const tenant = config.entra.tenants.length === 1 ? config.entra.tenants[0] : 'organizations';
  return {
    identityHeaders: config.response.identityHeaders,
    tokenHeader: config.entra.tokenHeader,
    removeTokenHeader: config.response.removeTokenHeader,
    realm: config.response.realm,
    authorizationUri: `${config.entra.authority}/${tenant}/oauth2/authorize`,
    dryRunHeader: config.response.dryRunHeader,
  };
}

function bind(server: Server, address: string, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Starts the ext_authz gRPC server (Check + grpc.health.v1.Health) for one configuration. */
export async function startApp(config: Config, deps: AppDeps): Promise<RunningApp> {
  const now = deps.now ?? Date.now;
  const log = deps.log;
  const telemetry = deps.telemetry;
  const newKeyStore = (entra: Config['entra']) =>
    createKeyStore({
      config: entra,
      fetch: deps.fetch ?? globalThis.fetch,
      now,
      log: ({ level, msg, ...fields }) => log[level](fields, msg),
      ...(telemetry ? { onFetch: telemetry.onKeyFetch } : {}),
    });
  // Everything derived from one configuration; a check takes one snapshot when it starts.
  const runtimeFor = async (cfg: Config, keys: ReturnType<typeof newKeyStore>) => {
    const verifier = createCachingVerifier(
      createTokenVerifier({ config: cfg.entra, keys, now }),
      { ...cfg.entra.tokenCache, clockSkewSeconds: cfg.entra.clockSkewSeconds },
      now,
    );
    const peer = createPeerResolver(await loadPeerSettings(cfg.peer));
    const decide = createDecider({ config: cfg, verifier, newId: deps.newId ?? randomUUID, now, peer });
    return { config: cfg, keys, decide, settings: responseSettings(cfg) };
  };
  const runtime = createConfigHolder(await runtimeFor(config, newKeyStore(config.entra)));
  const checks = telemetry?.checks ?? NOOP_CHECK_TRACER;
  telemetry?.metrics.observeKeySets(() => runtime.current().keys.stats());

  const health = new HealthImplementation({ '': 'NOT_SERVING', [AUTHORIZATION_SERVICE]: 'NOT_SERVING' });
  let shuttingDown = false;
  const serving = (): boolean => !shuttingDown && runtime.current().keys.isReady();
  const updateHealth = (): void => {
    const state = serving() ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', state);
    health.setStatus(AUTHORIZATION_SERVICE, state);
  };
  let unsubscribe = runtime.current().keys.onReadyChange(updateHealth);

  let inFlight = 0;
  const check = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): void => {
    const started = performance.now();
    const { decide, settings } = runtime.current();
    inFlight++;
    const span = checks.startCheckFromRequest(call.request, call.metadata.getMap());
    const finish = (outcome: CheckOutcome): void => {
      inFlight--;
      const plan = planResponse(outcome.decision, settings, peerFacts(outcome.peer));
      if (plan.kind === 'unavailable') callback({ code: status.UNAVAILABLE, details: plan.message });
      else callback(null, toCheckResponse(plan));
      const principal = outcome.peer?.principal ?? outcome.request?.source.principal;
      telemetry?.recordDecision({
        span,
        decision: outcome.decision,
        request: outcome.request,
        outcomes: outcome.outcomes,
        durationMs: performance.now() - started,
        cacheHit: outcome.tokenCacheHit,
        ...(outcome.rejectedTokenHash ? { tokenHash: outcome.rejectedTokenHash } : {}),
        peer: { principal: principal || undefined, fingerprint: outcome.peer?.fingerprintSha256 },
      });
    };
    decide(call.request, span).then(finish, (err: unknown) => {
      // Fail closed: an unexpected error is a deny, never an exception thrown into grpc-js.
      log.error({ err: (err as Error)?.name, msg: (err as Error)?.message }, 'check failed unexpectedly');
      finish({
        decision: { kind: 'deny', id: randomUUID(), reason: 'internal_error', detail: 'unexpected error', rule: undefined, identity: undefined },
        request: undefined,
        outcomes: [],
      });
    });
  };

  // The listener: plain gRPC, or TLS (optionally mutual; the credentials carry the allow-list of
  // client identities).
  const tlsConfig = config.server.tls;
  let tls: TlsListener | undefined;
  if (tlsConfig) {
    tls = await createTlsListener(tlsConfig, {
      ...deps.tls,
      onReload: (e) => log.info({ changed: e.changed, certificate: e.certificate }, 'TLS material reloaded'),
      onError: (problem) => log.error({ problem }, 'TLS material not reloaded; serving the last good certificate'),
      onClientRefused: (detail) => log.warn({ detail }, 'gRPC client refused'),
    });
  }

  const server = new Server({ 'grpc.max_receive_message_length': 8 * 1024 * 1024 });
  server.addService(loadAuthorizationService(), { Check: check });
  health.addToServer(server);
  const port = await bind(server, config.server.listen, tls?.credentials ?? ServerCredentials.createInsecure());
  const address = formatListen({ host: parseListen(config.server.listen).host, port });
  log.info({ address, tls: tls !== undefined, clientCertificates: tlsConfig?.requireClientCert ?? false }, 'ext_authz gRPC server listening');

  void runtime.current().keys.start().then(updateHealth);

  return {
    address,
    isServing: serving,
    async reload(next) {
      if (shuttingDown) return;
      const previous = runtime.current();
      if (next.server.listen !== previous.config.server.listen) {
        log.warn({ listen: previous.config.server.listen, configured: next.server.listen }, 'server.listen changes need a restart; still listening on the old address');
      }
      if (!entraChanged(previous.config, next)) {
        runtime.replace(await runtimeFor(next, previous.keys));
      } else {
        const fresh = newKeyStore(next.entra);
        await fresh.start();
        if (!fresh.isReady() || shuttingDown) {
          fresh.stop();
          throw new Error('the signing keys of the new entra section could not be loaded; keeping the running configuration');
        }
        let nextRuntime;
        try {
          nextRuntime = await runtimeFor(next, fresh);
        } catch (err) {
          fresh.stop();
          throw err;
        }
        runtime.replace(nextRuntime);
        unsubscribe();
        unsubscribe = fresh.onReadyChange(updateHealth);
        previous.keys.stop();
      }
      updateHealth();
      log.info({ rules: next.rules.length, keysRebuilt: previous.keys !== runtime.current().keys }, 'configuration reloaded');
    },
    reloadCertificates: () => tls?.reload() ?? Promise.resolve(false),
    async close(graceMs = runtime.current().config.server.shutdownGraceSeconds * 1000) {
      if (shuttingDown) return;
      shuttingDown = true;
      updateHealth();
      runtime.current().keys.stop();
      tls?.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn({ inFlight }, 'grace period over; cancelling remaining checks');
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
