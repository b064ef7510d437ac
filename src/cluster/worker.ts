/**
 * One worker process of `server.workers` > 1: the gRPC listener (its port shared through
 * node:cluster) and a full runtime, with three things delegated to the primary — key documents
 * (one fetch for all workers), the audit stream (one writer, whole lines) and the admin endpoints
 * (one /readyz, one aggregated /metrics).
 */
import { parseConfig } from '../config/load.js';
import { startApp, type RunningApp } from '../runtime/app.js';
import type { Logger } from '../telemetry/logger.js';
import { startTelemetry, type Telemetry } from '../telemetry/telemetry.js';
import { createAuditForwarder } from './audit-forwarder.js';
import { isMessage, type PrimaryMessage, type WorkerMessage } from './protocol.js';
import { createWorkerFetch } from './shared-fetch.js';

export interface WorkerOptions {
  readonly configPath: string;
  readonly serviceName: string;
  readonly log: Logger;
}

/** Runs until the primary says `shutdown` (or the process gets SIGTERM/SIGINT); resolves with the exit code. */
export function runWorker(options: WorkerOptions): Promise<number> {
  const { log, configPath } = options;
  const listeners: ((m: PrimaryMessage) => void)[] = [];
  process.on('message', (m: unknown) => {
    if (isMessage<PrimaryMessage>(m)) for (const listener of listeners) listener(m);
  });
  const send = (m: WorkerMessage, done: () => void = () => undefined): void => {
    if (process.connected) process.send?.(m, undefined, {}, done);
    else done();
  };
  const keyDocumentFetch = createWorkerFetch(send, (listener) => listeners.push(listener));

  return new Promise<number>((resolve) => {
    let app: RunningApp | undefined;
    let telemetry: Telemetry | undefined;
    let forwarder: ReturnType<typeof createAuditForwarder> | undefined;
    let stopping: Promise<void> | undefined;
    let starting: Promise<void> | undefined;

    const stop = (code = 0): Promise<void> =>
      (stopping ??= (async () => {
        try {
          // A start under way finishes first, so that what it opens is closed too.
          await starting?.catch(() => undefined);
          await app?.close();
          await telemetry?.shutdown();
          await forwarder?.flush();
        } finally {
          // The IPC channel would keep the process alive.
          if (process.connected) process.disconnect();
          resolve(code);
        }
      })());
    process.on('SIGTERM', () => void stop());
    process.on('SIGINT', () => void stop());
    // The primary is gone: nobody can replace, drain or record for this worker any more.
    process.on('disconnect', () => void stop());

    const start = async (text: string): Promise<void> => {
      const config = parseConfig(text, configPath);
      let dropsReported = false;
      forwarder = createAuditForwarder({
        send,
        maxBufferBytes: config.telemetry.audit.maxBufferBytes,
        onDrop: (n) => {
          telemetry?.metrics.auditDropped(n);
          if (dropsReported) return;
          dropsReported = true;
          log.error({ maxBufferBytes: config.telemetry.audit.maxBufferBytes }, 'audit records are being dropped: the audit buffer is full (telemetry.audit.maxBufferBytes)');
        },
      });
      telemetry = await startTelemetry({
        config: config.telemetry,
        serviceName: options.serviceName,
        isReady: () => app?.isServing() ?? false,
        serveAdmin: false,
        auditTarget: forwarder,
        onWarning: (message) => log.warn(message),
      });
      app = await startApp(config, { log, telemetry, keyDocumentFetch });
      const running = app;
      const report = (): void => send({ type: 'entra-authz:serving', serving: running.isServing() });
      running.onServingChange(report);
      report();
    };

    listeners.push((m) => {
      switch (m.type) {
        case 'entra-authz:reload': {
          const apply = app === undefined ? (starting ??= start(m.text)) : reload(m.text);
          apply.then(
            () => send({ type: 'entra-authz:reloaded', id: m.id }),
            (err: unknown) => {
              send({ type: 'entra-authz:reloaded', id: m.id, error: err instanceof Error ? err.message : String(err) });
              if (app === undefined) {
                log.error({ err: err instanceof Error ? err.message : String(err) }, 'worker could not start');
                // Not a clean exit: the primary replaces the worker (at most once a second).
                void stop(1);
              }
            },
          );
          break;
        }
        case 'entra-authz:reload-certificates':
          app?.reloadCertificates().catch((err: unknown) => log.error({ err: (err as Error).message }, 'certificate reload failed'));
          break;
        case 'entra-authz:metrics':
          void (telemetry?.metrics.registry.getMetricsAsJSON() ?? Promise.resolve([])).then(
            (metrics) => send({ type: 'entra-authz:metrics', id: m.id, metrics }),
            () => send({ type: 'entra-authz:metrics', id: m.id, metrics: [] }),
          );
          break;
        case 'entra-authz:shutdown':
          void stop();
          break;
        default:
          break;
      }
    });

    const reload = async (text: string): Promise<void> => {
      const next = parseConfig(text, configPath);
      await app?.reload(next);
      await telemetry?.setAuditConfig(next.telemetry.audit);
    };
    // Messages sent before a listener exists are lost: ask for the configuration only now.
    send({ type: 'entra-authz:started' });
  });
}
