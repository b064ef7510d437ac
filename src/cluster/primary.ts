/**
 * The primary process of `server.workers` > 1. It serves no checks itself: it forks the workers
 * (node:cluster shares the gRPC port among them), replaces any that dies, and keeps them one
 * service to operators — one /readyz (ready when every worker is), one /metrics (prom-client's
 * AggregatorRegistry over every worker), one audit stream (workers send whole lines), one fetch
 * of each key document for all workers, and configuration reload, certificate reload and SIGTERM
 * drain passed on to every worker.
 */
import cluster, { type Worker } from 'node:cluster';
import { readFile } from 'node:fs/promises';
import { AggregatorRegistry } from 'prom-client';
import { createConfigWatcher } from '../config/reload.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../telemetry/logger.js';
import { reportReloadFailure } from '../telemetry/reload-failure.js';
import { startTelemetry } from '../telemetry/telemetry.js';
import { isMessage, type PrimaryMessage, type WorkerMessage } from './protocol.js';
import { answerFetch, createSharedFetch } from './shared-fetch.js';

export interface PrimaryOptions {
  readonly configPath: string;
  /** The validated configuration and the text it was read from (sent to every worker as it is). */
  readonly config: Config;
  readonly text: string;
  readonly workers: number;
  readonly serviceName: string;
  readonly log: Logger;
  /** Resolves when the process should stop (SIGTERM/SIGINT); see cli/lifecycle.ts. */
  readonly untilSignalled: (stop: () => Promise<void>) => Promise<number>;
}

/** A worker that dies within this long of the previous death is replaced only after it. */
const RESTART_BACKOFF_MS = 1000;
/** How long /metrics waits for a worker's numbers. */
const METRICS_TIMEOUT_MS = 2000;

export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { log, workers: size } = options;
  let current = { config: options.config, text: options.text };
  let shuttingDown = false;
  const serving = new Map<number, boolean>();
  const pending = new Map<number, (m: WorkerMessage) => void>();
  let nextId = 0;

  const ask = <T extends WorkerMessage>(worker: Worker, message: (id: number) => PrimaryMessage, timeoutMs: number): Promise<T | undefined> =>
    new Promise((resolve) => {
      const id = ++nextId;
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve(undefined);
      }, timeoutMs);
      pending.set(id, (m) => {
        clearTimeout(timer);
        pending.delete(id);
        resolve(m as T);
      });
      if (!tell(worker, message(id))) {
        clearTimeout(timer);
        pending.delete(id);
        resolve(undefined);
      }
    });
  /** Sends to a worker unless its channel has closed (it is exiting: nothing to tell it any more). */
  const tell = (worker: Worker, message: PrimaryMessage): boolean => {
    if (!worker.isConnected()) return false;
    try {
      worker.send(message);
      return true;
    } catch {
      return false;
    }
  };
  const live = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const running = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());

  const aggregated = {
    contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE,
    async metrics(): Promise<string> {
      const answers = await Promise.all(
        live().map((w) => ask<Extract<WorkerMessage, { type: 'entra-authz:metrics' }>>(w, (id) => ({ type: 'entra-authz:metrics', id }), METRICS_TIMEOUT_MS)),
      );
      const own = await telemetry.metrics.registry.getMetricsAsJSON();
      type Metrics = Parameters<typeof AggregatorRegistry.aggregate>[0][number];
      const all: Metrics[] = [own, ...answers.flatMap((a) => (a && Array.isArray(a.metrics) ? [a.metrics as Metrics] : []))];
      return AggregatorRegistry.aggregate(all).metrics();
    },
  };

  const ready = (): { ready: boolean; detail?: Record<string, unknown> } => {
    const up = [...serving.values()].filter(Boolean).length;
    return !shuttingDown && up === size ? { ready: true } : { ready: false, detail: { workersServing: up, workers: size, shuttingDown } };
  };

  const telemetry = await startTelemetry({
    config: current.config.telemetry,
    serviceName: options.serviceName,
    isReady: ready,
    metricsEndpoint: aggregated,
    onWarning: (message) => log.warn(message),
    onAuditOverflow: (maxBufferBytes, target) =>
      log.error({ target, maxBufferBytes }, 'audit records are being dropped: the audit buffer is full (telemetry.audit.maxBufferBytes)'),
  });

  // One fetch per key document for all workers; an answer is reused for the unknown-kid cooldown.
  const sharedFetch = createSharedFetch({
    fetch: globalThis.fetch,
    now: Date.now,
    get reuseMs() {
      return current.config.entra.keys.unknownKidCooldownSeconds * 1000;
    },
    get timeoutMs() {
      return current.config.entra.keys.fetchTimeoutMs;
    },
  });

  const onMessage = (worker: Worker, m: unknown): void => {
    if (!isMessage<WorkerMessage>(m)) return;
    switch (m.type) {
      case 'entra-authz:started':
        // A worker that comes up while the service drains is told to stop instead of to start.
        tell(worker, shuttingDown ? { type: 'entra-authz:shutdown' } : { type: 'entra-authz:reload', id: 0, text: current.text });
        break;
      case 'entra-authz:serving':
        serving.set(worker.id, m.serving);
        break;
      case 'entra-authz:fetch':
        answerFetch(m, sharedFetch, (reply) => void tell(worker, reply));
        break;
      case 'entra-authz:audit':
        telemetry.audit.writeLines(m.lines, m.records);
        break;
      default:
        pending.get(m.id)?.(m);
    }
  };

  const fork = (): void => {
    if (shuttingDown) return;
    const worker = cluster.fork();
    serving.set(worker.id, false);
    worker.on('message', (m: unknown) => onMessage(worker, m));
    // A message that could not be delivered (the worker was exiting) must not crash the primary.
    worker.on('error', (err: Error) => log.warn({ worker: worker.id, err: err.message }, 'worker channel error'));
  };

  let lastDeath = 0;
  cluster.on('exit', (worker, code, signal) => {
    serving.delete(worker.id);
    // A clean exit is a drain someone asked for (systemd signals the whole control group, a
    // terminal the whole process group): the primary is about to stop as well.
    if (shuttingDown || (code === 0 && signal === null)) return;
    telemetry.metrics.workerRestarted();
    log.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker exited; starting a replacement');
    const now = Date.now();
    const delay = now - lastDeath < RESTART_BACKOFF_MS ? RESTART_BACKOFF_MS : 0;
    lastDeath = now;
    setTimeout(fork, delay);
  });
  for (let i = 0; i < size; i++) fork();
  log.info({ workers: size, admin: telemetry.admin.url }, 'primary started; admin endpoints listening');

  // Hot reload: validated here once, then every worker installs the same text.
  let lastRead = current.text;
  const watcher = createConfigWatcher({
    path: options.configPath,
    initialText: current.text,
    readFile: async (path) => (lastRead = await readFile(path, 'utf8')),
    onChange: async (next) => {
      const text = lastRead;
      const answers = await Promise.all(
        live().map((w) => ask<Extract<WorkerMessage, { type: 'entra-authz:reloaded' }>>(w, (id) => ({ type: 'entra-authz:reload', id, text }), 60_000)),
      );
      const failed = answers.find((a) => a === undefined || a.error !== undefined);
      current = { config: next, text };
      await telemetry.setAuditConfig(next.telemetry.audit);
      if (failed) throw new Error(`a worker did not apply the configuration: ${failed.error ?? 'no answer'}`);
      telemetry.metrics.configReload('success');
    },
    onError: reportReloadFailure(telemetry.metrics, log),
  });
  const onSighup = (): void => {
    telemetry.audit.reopen();
    for (const w of live()) tell(w, { type: 'entra-authz:reload-certificates' });
  };
  process.on('SIGHUP', onSighup);

  return options.untilSignalled(async () => {
    shuttingDown = true;
    process.off('SIGHUP', onSighup);
    watcher.close();
    const exited = Promise.all(running().map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve())))));
    for (const w of live()) tell(w, { type: 'entra-authz:shutdown' });
    // Each worker bounds its own drain by the grace period; this bounds a stuck one.
    const graceMs = current.config.server.shutdownGraceSeconds * 1000 + 5000;
    const timer = setTimeout(() => {
      for (const w of running()) w.process.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
    await telemetry.shutdown();
  });
}
