import type { Config } from '../config/schema.js';
import { startGrpcServer, type GrpcServerOptions } from '../server/grpc.js';
import { createRuntime, type RuntimeDeps } from './compose.js';

export type AppDeps = RuntimeDeps & Pick<GrpcServerOptions, 'tls'>;

/** A runtime served over gRPC: what `serve` and `dev` run, and what end-to-end tests start. */
export interface RunningApp {
  /** host:port the gRPC listener is bound to (the real port when 0 was configured). */
  readonly address: string;
  /** True once signing keys for every configured tenant are loaded, until shutdown begins. */
  isServing(): boolean;
  /** Why signing keys keep the server from serving (empty when they do not), for /readyz. */
  keyProblems(): readonly string[];
  /** Stops accepting, lets in-flight checks finish within the grace period, then closes. */
  close(graceMs?: number): Promise<void>;
  /** Installs a new, already validated configuration (see `Runtime.reload`). */
  reload(config: Config): Promise<void>;
  /** Re-reads the listener's certificate files now (SIGHUP); resolves true when they changed. */
  reloadCertificates(): Promise<boolean>;
}

/** Builds the runtime for `config` and serves it over gRPC (Check + grpc.health.v1.Health). */
export async function startApp(config: Config, deps: AppDeps): Promise<RunningApp> {
  const runtime = await createRuntime(config, deps);
  let server;
  try {
    server = await startGrpcServer(runtime, config.server, { log: deps.log, tls: deps.tls });
  } catch (err) {
    runtime.close();
    throw err;
  }
  void runtime.start();
  const grpc = server;
  let closing = false;
  return {
    address: grpc.address,
    isServing: runtime.isServing,
    keyProblems: runtime.keyProblems,
    async reload(next) {
      const listen = runtime.current().config.server.listen;
      if (next.server.listen !== listen) {
        deps.log.warn({ listen, configured: next.server.listen }, 'server.listen changes need a restart; still listening on the old address');
      }
      await runtime.reload(next);
    },
    reloadCertificates: grpc.reloadCertificates,
    async close(graceMs = runtime.current().config.server.shutdownGraceSeconds * 1000) {
      if (closing) return;
      closing = true;
      runtime.close();
      await grpc.close(graceMs);
    },
  };
}
