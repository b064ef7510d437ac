/**
 * A worker's audit lines, sent to the primary in batches (one IPC message per 64 KiB or 50 ms),
 * where one sink writes every worker's lines whole. Bounded: lines beyond `maxBufferBytes` not yet
 * handed to the IPC channel are dropped and counted.
 */
import type { WorkerMessage } from './protocol.js';

const BATCH_BYTES = 64 * 1024;
const BATCH_MS = 50;

export interface AuditForwarder {
  /** One serialised line (with its `\n`); never throws. */
  write(line: string): void;
  /** Sends what is gathered and resolves once the IPC channel has taken everything. */
  flush(): Promise<void>;
}

export interface AuditForwarderOptions {
  /** process.send with its completion callback. */
  readonly send: (message: WorkerMessage, done: () => void) => void;
  readonly maxBufferBytes: number;
  /** Lines dropped (the bound was reached); the caller counts them and logs the first. */
  readonly onDrop: (records: number) => void;
}

export function createAuditForwarder(options: AuditForwarderOptions): AuditForwarder {
  let lines = '';
  let records = 0;
  /** Characters sent but not yet taken by the channel. */
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  let idle: (() => void)[] = [];

  const settle = (): void => {
    if (inFlight > 0 || records > 0) return;
    const waiting = idle;
    idle = [];
    for (const resolve of waiting) resolve();
  };

  const send = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (records === 0) return;
    const batch = lines;
    const count = records;
    lines = '';
    records = 0;
    inFlight += batch.length;
    try {
      options.send({ type: 'entra-authz:audit', lines: batch, records: count }, () => {
        inFlight -= batch.length;
        settle();
      });
    } catch {
      // The channel is gone (the primary exited): nothing can be recorded any more.
      inFlight -= batch.length;
      options.onDrop(count);
      settle();
    }
  };

  return {
    write(line) {
      if (inFlight + lines.length + line.length > options.maxBufferBytes) {
        options.onDrop(1);
        return;
      }
      lines += line;
      records++;
      if (lines.length >= BATCH_BYTES) send();
      else if (timer === undefined) timer = setTimeout(send, BATCH_MS);
    },
    flush() {
      send();
      return new Promise<void>((resolve) => {
        idle.push(resolve);
        settle();
      });
    },
  };
}
