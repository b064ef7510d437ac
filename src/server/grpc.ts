/**
 * The gRPC adapter: envoy.service.auth.v3.Authorization/Check and grpc.health.v1.Health over one
 * runtime. Wire → normalised `RequestView` → the runtime's check → `ResponsePlan` → wire; it knows
 * the protobuf shapes and nothing of the engine. Other adapters (HTTP) follow the same three steps.
 */
import { Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { formatListen, parseListen } from '../config/listen.js';
import type { Config } from '../config/schema.js';
import { whenReady } from '../core/maybe-async.js';
import { reasonInfo } from '../core/reasons.js';
import { normalizeCheckRequest } from '../core/request.js';
import type { ResponsePlan } from '../core/response.js';
import type { Runtime } from '../runtime/compose.js';
import type { Logger } from '../telemetry/logger.js';
import { createCheckResponseEncoder, type CheckResponseEncoder } from './check-response.js';
import { loadAuthorizationService } from './protos.js';
import type { ListenerOptions, RunningListener } from './listener.js';
import { createTlsListener, type TlsListener } from './tls.js';

export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';

/**
 * grpc-js server options. Channelz is off: nothing here serves it, and its per-call bookkeeping
 * costs several percent of a cache-hit check.
 */
export const GRPC_SERVER_OPTIONS = Object.freeze({ 'grpc.max_receive_message_length': 8 * 1024 * 1024, 'grpc.enable_channelz': 0 });

const internal = reasonInfo('internal_error');
/** Sent when even turning a plan into a CheckResponse failed: a deny, never a failed RPC (which failure_mode_allow could turn into an allow). */
const LAST_RESORT_DENY = Object.freeze({
  status: { code: internal.grpcCode, message: 'internal_error' },
  denied_response: { status: { code: internal.httpStatus }, headers: [], body: '' },
});

/**
 * The Check handler. Catches everything: grpc-js never sees an exception, and a failure anywhere
 * answers with a deny. Answers are encoded by `responses` (reused per caller, see
 * check-response.ts) and handed to grpc-js as bytes.
 */
export function createCheckHandler(runtime: Pick<Runtime, 'current'>, log: Logger, responses: CheckResponseEncoder) {
  /** Sends one plan as Check's answer: an allow or deny CheckResponse, or UNAVAILABLE. */
  const reply = (plan: ResponsePlan, callback: sendUnaryData<unknown>): void => {
    if (plan.kind === 'unavailable') callback({ code: status.UNAVAILABLE, details: plan.message });
    else callback(null, responses.encode(plan));
  };
  return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): void => {
    const failed = (err: unknown): void => {
      log.error({ error: err instanceof Error ? err.name : typeof err }, 'Check answer could not be built; denied');
      callback(null, LAST_RESORT_DENY);
    };
    const send = (plan: ResponsePlan): void => {
      try {
        reply(plan, callback);
      } catch (err) {
        failed(err);
      }
    };
    try {
      const snapshot = runtime.current();
      const request = normalizeCheckRequest(call.request, snapshot.limits);
      // A cached caller is answered in this tick: a deferred answer costs grpc-js throughput.
      whenReady(snapshot.check(request, { mode: 'grpc', traceMetadata: () => call.metadata.getMap() }), send, failed);
    } catch (err) {
      failed(err);
    }
  };
}

export type GrpcServerOptions = ListenerOptions;
export type GrpcServer = RunningListener;

function bind(server: Server, address: string, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Serves Check and Health for `runtime` on `config.listen` (plain gRPC, or TLS, optionally mutual). */
export async function startGrpcServer(runtime: Pick<Runtime, 'current' | 'isServing' | 'onServingChange'>, config: Config['server'], options: GrpcServerOptions): Promise<GrpcServer> {
  const { log } = options;
  const health = new HealthImplementation({ '': 'NOT_SERVING', [AUTHORIZATION_SERVICE]: 'NOT_SERVING' });
  const updateHealth = (): void => {
    const state = runtime.isServing() ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', state);
    health.setStatus(AUTHORIZATION_SERVICE, state);
  };
  runtime.onServingChange(updateHealth);
  updateHealth();

  // The credentials carry the allow-list of client identities when client certificates are required.
  const tlsConfig = config.tls;
  let tls: TlsListener | undefined;
  if (tlsConfig) {
    tls = await createTlsListener(tlsConfig, {
      ...options.tls,
      onReload: (e) => log.info({ changed: e.changed, certificate: e.certificate }, 'TLS material reloaded'),
      onError: (problem) => log.error({ problem }, 'TLS material not reloaded; serving the last good certificate'),
      onClientRefused: (detail) => log.warn({ detail }, 'gRPC client refused'),
    });
  }

  const server = new Server({ ...GRPC_SERVER_OPTIONS });
  const service = loadAuthorizationService();
  const responses = createCheckResponseEncoder((message) => service['Check']!.responseSerialize(message));
  server.addService(service, { Check: createCheckHandler(runtime, log, responses) });
  health.addToServer(server);
  let port: number;
  try {
    port = await bind(server, config.listen, tls?.credentials ?? ServerCredentials.createInsecure());
  } catch (err) {
    tls?.close();
    throw err;
  }
  const address = formatListen({ host: parseListen(config.listen).host, port });
  log.info({ address, tls: tls !== undefined, clientCertificates: tlsConfig?.requireClientCert ?? false }, 'ext_authz gRPC server listening');

  return {
    address,
    reloadCertificates: () => tls?.reload() ?? Promise.resolve(false),
    async close(graceMs) {
      tls?.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn({ graceMs }, 'grace period over; cancelling remaining checks');
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
