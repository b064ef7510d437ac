import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { runPrimary } from '../cluster/primary.js';
import { runWorker } from '../cluster/worker.js';
import { parseConfig, readConfigText } from '../config/load.js';
import { createConfigWatcher } from '../config/reload.js';
import type { Config } from '../config/schema.js';
import { startApp, type RunningApp } from '../runtime/app.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { reportReloadFailure } from '../telemetry/reload-failure.js';
import { startTelemetry, type Telemetry } from '../telemetry/telemetry.js';
import { untilSignalled } from './lifecycle.js';

export const SERVICE_NAME = 'entra-authz';

/** Telemetry + server for one configuration: what `serve` and `dev` both run. */
export async function startService(config: Config, log: Logger): Promise<{ app: RunningApp; telemetry: Telemetry; stop(): Promise<void> }> {
  let app: RunningApp | undefined;
  const telemetry = await startTelemetry({
    config: config.telemetry,
    serviceName: SERVICE_NAME,
    isReady: () => {
      if (app?.isServing()) return { ready: true };
      const problems = app?.keyProblems() ?? [];
      return { ready: false, detail: problems.length > 0 ? { keys: problems } : 'signing keys not loaded, or shutting down' };
    },
    onWarning: (message) => log.warn(message),
    onAuditOverflow: (maxBufferBytes, target) =>
      log.error({ target, maxBufferBytes }, 'audit records are being dropped: the audit buffer is full (telemetry.audit.maxBufferBytes)'),
  });
  try {
    app = await startApp(config, { log, telemetry });
  } catch (err) {
    await telemetry.shutdown();
    throw err;
  }
  const running = app;
  log.info({ admin: telemetry.admin.url, tracing: telemetry.tracing.enabled }, 'admin endpoints listening');
  return {
    app: running,
    telemetry,
    async stop() {
      await running.close();
      await telemetry.shutdown();
    },
  };
}

export async function runServe(configPath: string): Promise<number> {
  // A worker forked by the primary below: it gets its configuration from the primary.
  if (cluster.isWorker) return runWorker({ configPath, serviceName: SERVICE_NAME, log: createLogger().child({ worker: cluster.worker?.id }) });
  const text = await readConfigText(configPath);
  const config = parseConfig(text, configPath);
  const log = createLogger();
  const workers = config.server.workers ?? availableParallelism();
  if (workers > 1) {
    return runPrimary({ configPath, config, text, workers, serviceName: SERVICE_NAME, log, untilSignalled: (stop) => untilSignalled(log, stop) });
  }
  const { app, telemetry, stop } = await startService(config, log);

  // Hot reload on file change and SIGHUP: validated first, an invalid file keeps the running config.
  const watcher = createConfigWatcher({
    path: configPath,
    initialText: text,
    onChange: async (next) => {
      await app.reload(next);
      await telemetry.setAuditConfig(next.telemetry.audit);
      telemetry.metrics.configReload('success');
    },
    onError: reportReloadFailure(telemetry.metrics, log),
  });
  // SIGHUP also re-reads the listener's certificates and reopens the audit file (log rotation).
  const onSighup = (): void => {
    telemetry.audit.reopen();
    app.reloadCertificates().catch((err: unknown) => log.error({ err: (err as Error).message }, 'certificate reload failed'));
  };
  process.on('SIGHUP', onSighup);
  return untilSignalled(log, async () => {
    process.off('SIGHUP', onSighup);
    watcher.close();
    await stop();
  });
}
