import type { Config } from '../config/schema.js';
import { startGrpcServer, type GrpcServer, type GrpcServerOptions } from '../server/grpc.js';
import { startHttpServer, type HttpServer } from '../server/http/listener.js';
import { createRuntime, type RuntimeDeps } from './compose.js';

export type AppDeps = RuntimeDeps & Pick<GrpcServerOptions, 'tls'>;

/** A runtime served over gRPC: what `serve` and `dev` run, and what end-to-end tests start. */
export interface RunningApp {
  /** host:port the gRPC listener is bound to (the real port when 0 was configured). */
  readonly address: string;
  /** host:port of the HTTP authorization listener, when `server.http` is set. */
  readonly httpAddress: string | undefined;
  /** True once signing keys for every configured tenant are loaded, until shutdown begins. */
  isServing(): boolean;
  /** Why signing keys keep the server from serving (empty when they do not), for /readyz. */
  keyProblems(): readonly string[];
  /** Called whenever `isServing()` may have changed. */
  onServingChange(listener: () => void): void;
  /** Stops accepting, lets in-flight checks finish within the grace period, then closes. */
  close(graceMs?: number): Promise<void>;
  /** Installs a new, already validated configuration (see `Runtime.reload`). */
  reload(config: Config): Promise<void>;
  /** Re-reads the listener's certificate files now (SIGHUP); resolves true when they changed. */
  reloadCertificates(): Promise<boolean>;
}

/**
 * Builds the runtime for `config` and serves it over gRPC (Check + grpc.health.v1.Health) and,
 * when `server.http` is set, over HTTP for forward-auth proxies: one runtime, two front doors.
 */
export async function startApp(config: Config, deps: AppDeps): Promise<RunningApp> {
  const runtime = await createRuntime(config, deps);
  let grpc: GrpcServer | undefined;
  let http: HttpServer | undefined;
  try {
    grpc = await startGrpcServer(runtime, config.server, { log: deps.log, tls: deps.tls });
    const httpConfig = config.server.http;
    if (httpConfig) http = await startHttpServer(runtime, httpConfig, { log: deps.log, tls: deps.tls, maxHeaderBytes: config.server.maxHeaderBytes });
  } catch (err) {
    await grpc?.close(0);
    runtime.close();
    throw err;
  }
  void runtime.start();
  const servers = [grpc, ...(http ? [http] : [])];
  let closing = false;
  return {
    address: grpc.address,
    httpAddress: http?.address,
    isServing: runtime.isServing,
    keyProblems: runtime.keyProblems,
    onServingChange: runtime.onServingChange,
    async reload(next) {
      const { listen, http: httpConfig } = runtime.current().config.server;
      if (next.server.listen !== listen) {
        deps.log.warn({ listen, configured: next.server.listen }, 'server.listen changes need a restart; still listening on the old address');
      }
      if (next.server.http?.listen !== httpConfig?.listen) {
        deps.log.warn({ listen: httpConfig?.listen, configured: next.server.http?.listen }, 'server.http.listen changes need a restart; the HTTP listener is unchanged');
      }
      await runtime.reload(next);
    },
    async reloadCertificates() {
      const changed = await Promise.all(servers.map((s) => s.reloadCertificates()));
      return changed.some(Boolean);
    },
    async close(graceMs = runtime.current().config.server.shutdownGraceSeconds * 1000) {
      if (closing) return;
      closing = true;
      runtime.close();
      await Promise.all(servers.map((s) => s.close(graceMs)));
    },
  };
}
