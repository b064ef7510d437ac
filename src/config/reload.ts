/**
 * Hot reload of the configuration file: on a change of the file and on SIGHUP.
 *
 * Guarantees:
 * - The new file is read, `${ENV}`-substituted and validated completely (schema and cross-rule
 *   checks — the same `parseConfig` as at start) before `onChange` sees it.
 * - An invalid file never replaces anything: `onError` gets the ConfigError (every problem with
 *   its path) and the running configuration stays.
 * - Reloads never overlap: events during a reload coalesce into one more reload after it.
 * - Replacement is atomic from a check's point of view when the integrator keeps the per-config
 *   state in a `ConfigHolder` and each check calls `current()` once, at its start: a check in
 *   flight keeps the snapshot it took, later checks see the new one.
 *
 * The directory is watched rather than the file: editors and Kubernetes ConfigMaps replace files
 * by rename (ConfigMaps swap a `..data` symlink), which a watch on the file itself misses. Any event
 * in the directory re-reads the file; an unchanged content (by hash) is ignored unless the reload
 * was forced (SIGHUP, `reload()`).
 */
import { createHash } from 'node:crypto';
import { watch as fsWatch } from 'node:fs';
import { readFile as fsReadFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Env } from './env.js';
import { parseConfig } from './load.js';
import type { Config } from './schema.js';

/** An atomically replaceable value: the per-configuration state of the server. */
export interface ConfigHolder<T> {
  /** The current value; take it once per check and use that snapshot throughout. */
  current(): T;
  /** Installs `next` for every later `current()`; returns the previous value. */
  replace(next: T): T;
}

export function createConfigHolder<T>(initial: T): ConfigHolder<T> {
  let value = initial;
  return {
    current: () => value,
    replace(next) {
      const previous = value;
      value = next;
      return previous;
    },
  };
}

/** `fs.watch`-like: calls `listener` on any change in `directory`. */
export type WatchFn = (
  directory: string,
  listener: (event: string, filename: string | null) => void,
) => { close(): void; on?(event: 'error', cb: (err: Error) => void): unknown };

/** Where SIGHUP comes from (`process` by default). */
export interface SignalSource {
  on(signal: 'SIGHUP', listener: () => void): unknown;
  off(signal: 'SIGHUP', listener: () => void): unknown;
}

export type ReloadTrigger = 'file' | 'sighup' | 'manual';

export type ReloadResult =
  | { readonly kind: 'applied'; readonly config: Config }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'rejected'; readonly error: Error };

export interface ConfigWatcherOptions {
  /** The configuration file. */
  readonly path: string;
  /**
   * Receives each new, fully validated configuration. Install it here (e.g. build the new decider,
   * then `holder.replace`); if this throws or rejects, the error goes to `onError`, the
   * configuration counts as not applied and the next event retries.
   */
  readonly onChange: (config: Config, trigger: ReloadTrigger) => void | Promise<void>;
  /** A reload that failed (unreadable or invalid file, failing `onChange`); the running config stays. */
  readonly onError: (err: Error, trigger: ReloadTrigger) => void;
  /** Default: `fs.watch` on the file's directory. */
  readonly watch?: WatchFn;
  /** Default: `fs.promises.readFile`. */
  readonly readFile?: (path: string) => Promise<string>;
  /** Stops watching when aborted. */
  readonly signal?: AbortSignal;
  /** SIGHUP source; `false` to not listen. Default `process`. */
  readonly sighup?: SignalSource | false;
  /** Variables for `${NAME}` substitution; default `process.env`. */
  readonly env?: Env;
  /**
   * File events within this many ms are coalesced into one reload (editors write in steps).
   * 0 reloads on the event itself. Default 200.
   */
  readonly debounceMs?: number;
  /** The text of the running configuration, so that a first event with identical content is ignored. */
  readonly initialText?: string;
}

export interface ConfigWatcher {
  /** Reloads now (forced: applied even if the content is unchanged). */
  reload(trigger?: ReloadTrigger): Promise<ReloadResult>;
  /** Resolves once no reload is running, pending or debounced (tests await this instead of sleeping). */
  settled(): Promise<void>;
  /** Stops watching and listening for SIGHUP. Idempotent. */
  close(): void;
}

const hash = (text: string): string => createHash('sha256').update(text).digest('hex');

const defaultWatch: WatchFn = (directory, listener) => fsWatch(directory, { persistent: false }, listener);

export function createConfigWatcher(opts: ConfigWatcherOptions): ConfigWatcher {
  const read = opts.readFile ?? ((p: string) => fsReadFile(p, 'utf8'));
  const debounceMs = opts.debounceMs ?? 200;
  const sighup = opts.sighup === undefined ? process : opts.sighup;
  let appliedHash = opts.initialText === undefined ? undefined : hash(opts.initialText);
  let closed = false;
  let running: Promise<void> | undefined;
  /** The strongest pending request: a forced one wins over a file event. */
  let pending: { trigger: ReloadTrigger; force: boolean } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let lastResult: ReloadResult = { kind: 'unchanged' };

  async function once(trigger: ReloadTrigger, force: boolean): Promise<ReloadResult> {
    let text: string;
    let config: Config;
    try {
      text = await read(opts.path);
      if (!force && appliedHash !== undefined && hash(text) === appliedHash) return { kind: 'unchanged' };
      config = parseConfig(text, opts.path, opts.env === undefined ? {} : { env: opts.env });
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      opts.onError(error, trigger);
      return { kind: 'rejected', error };
    }
    if (closed) return { kind: 'unchanged' };
    try {
      await opts.onChange(config, trigger);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      opts.onError(error, trigger);
      return { kind: 'rejected', error };
    }
    appliedHash = hash(text);
    return { kind: 'applied', config };
  }

  /** Runs reloads one after another until nothing is pending. */
  function drain(): Promise<void> {
    if (running) return running;
    running = (async () => {
      while (pending && !closed) {
        const { trigger, force } = pending;
        pending = undefined;
        lastResult = await once(trigger, force);
      }
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  function request(trigger: ReloadTrigger, force: boolean): Promise<void> {
    pending = { trigger: pending?.force ? pending.trigger : trigger, force: force || (pending?.force ?? false) };
    return drain();
  }

  /** Pending while a debounced file event waits for its timer and its reload. */
  let debounced: { promise: Promise<void>; release: () => void } | undefined;

  const onFileEvent = (): void => {
    if (closed) return;
    if (debounceMs <= 0) {
      void request('file', false);
      return;
    }
    if (timer) clearTimeout(timer);
    if (!debounced) {
      let release!: () => void;
      const promise = new Promise<void>((resolve) => (release = resolve));
      debounced = { promise, release };
    }
    timer = setTimeout(() => {
      timer = undefined;
      const done = debounced;
      debounced = undefined;
      void request('file', false).finally(() => done?.release());
    }, debounceMs);
    timer.unref?.();
  };

  const onSighup = (): void => {
    if (!closed) void request('sighup', true);
  };

  const fileName = basename(opts.path);
  const watcher = (opts.watch ?? defaultWatch)(dirname(opts.path), (_event, filename) => {
    // Any entry of the directory may be the one the file resolves through (ConfigMap `..data`);
    // reading the file and comparing hashes is cheap, so every event counts except those for
    // unrelated temporary files that cannot be a link target of ours.
    if (filename !== null && filename !== fileName && !filename.startsWith('..') && /\.(swp|swx|tmp)$|~$/.test(filename)) return;
    onFileEvent();
  });
  watcher.on?.('error', (err) => opts.onError(err, 'file'));
  if (sighup) sighup.on('SIGHUP', onSighup);

  const close = (): void => {
    if (closed) return;
    closed = true;
    if (timer) clearTimeout(timer);
    timer = undefined;
    debounced?.release();
    debounced = undefined;
    watcher.close();
    if (sighup) sighup.off('SIGHUP', onSighup);
  };
  opts.signal?.addEventListener('abort', close, { once: true });
  if (opts.signal?.aborted) close();

  return {
    async reload(trigger = 'manual') {
      await request(trigger, true);
      return lastResult;
    },
    async settled() {
      // New events may arrive while waiting: loop until nothing is debounced or running.
      for (;;) {
        if (debounced) await debounced.promise;
        else if (running) await running;
        else return;
      }
    },
    close,
  };
}

/** Deep structural equality of JSON-like values (configurations), key order ignored. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Whether a reload must rebuild the key store (its inputs are the `entra` section only). */
export function entraChanged(previous: Config, next: Config): boolean {
  return !sameValue(previous.entra, next.entra);
}
