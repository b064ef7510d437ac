import pino from 'pino';
import type { Decision } from '../core/decision.js';
import type { PeerIdentity } from '../core/identity.js';
import type { RequirementOutcome } from '../core/outcome.js';
import type { ReasonCode } from '../core/reasons.js';
import { redactJwts } from '../core/redact.js';
import type { CheckMode, RequestView } from '../core/request.js';

/**
 * The audit log: one JSON line per decision, shaped for log pipelines and for humans reading an
 * incident timeline. The record is built by a pure function from typed fields — never from the raw
 * headers — so a token, an Authorization or Cookie value cannot reach it: the only request headers
 * read are the ones the request view already extracted (`x-request-id`). Every string in it has
 * JWT-shaped substrings redacted, wherever the client put them.
 */

// ---------------------------------------------------------------------------------------------
// The record
// ---------------------------------------------------------------------------------------------

/** One decision as written to the audit log. Absent values are `null`, so every line has every key. */
export interface AuditRecord {
  /** ISO 8601 time of the decision. */
  readonly time: string;
  /** Constant discriminator, to tell audit lines from other logs sharing stdout. */
  readonly type: 'entra_authz.decision';
  /** Same id as the response's dynamic metadata and the span's `entra_authz.decision_id`. */
  readonly decisionId: string;
  readonly decision: Decision['kind'];
  readonly reason: ReasonCode;
  readonly rule: string | null;
  /** `grpc` (Envoy's Check) or `http` (an HTTP authorization request). */
  readonly mode: CheckMode;
  /** Dry-run: the request was allowed although enforcement would have denied it (see `wouldDeny`). */
  readonly dryRun: boolean;
  /** On a dry-run allow: the reason code enforcement would have denied with. */
  readonly wouldDeny: ReasonCode | null;
  /** Internal detail (library error names etc.; never token contents). */
  readonly detail: string | null;

  // Who called (present once a token was verified).
  readonly oid: string | null;
  readonly tid: string | null;
  readonly appId: string | null;
  readonly tokenType: 'app' | 'user' | null;
  readonly tokenVersion: '1.0' | '2.0' | null;
  /** App roles / delegated scopes that counted for the decision. */
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
  /** The rule's requirements as evaluated: which were met and what the caller held. */
  readonly requirements: readonly RequirementOutcome[];
  /** Entra's token id, to correlate with Entra sign-in logs. */
  readonly uti: string | null;
  /** base64url SHA-256 of the token: matches a token an auditor holds, reveals nothing. */
  readonly tokenHash: string | null;

  // What was asked.
  readonly method: string | null;
  readonly host: string | null;
  /** Path without query string. */
  readonly path: string | null;
  /** `[redacted]` when redaction is on and there was a query; null when there was none. */
  readonly query: string | null;
  readonly sourceAddress: string | null;
  readonly sourcePort: number | null;
  /** mTLS peer principal (SPIFFE id, SAN or subject) and SHA-256 certificate fingerprint. */
  readonly peerPrincipal: string | null;
  readonly peerCertFingerprint: string | null;
  /** The `x-request-id` header. */
  readonly requestId: string | null;

  // Correlation and cost.
  readonly traceId: string | null;
  readonly spanId: string | null;
  readonly durationMs: number;
  readonly cacheHit: boolean;
}

/**
 * What one audit record is built from: the engine's `CheckOutcome` fields under the engine's own
 * names, plus what only the caller knows (timing, span ids, clock, redaction).
 */
export interface AuditInput {
  readonly decision: Decision;
  /** Absent when the request could not even be normalized. */
  readonly request?: RequestView | undefined;
  readonly peer?: Pick<PeerIdentity, 'principal' | 'fingerprintSha256'> | undefined;
  readonly durationMs: number;
  /** Whether the token's verification came from the verified-token cache; false when unknown. */
  readonly tokenCacheHit?: boolean | undefined;
  /** Dry-run mode was on for this check; always true when the decision carries `dryRun`. */
  readonly dryRun?: boolean;
  /** The front door the check came through. Default `grpc`. */
  readonly mode?: CheckMode;
  readonly traceId?: string | undefined;
  readonly spanId?: string | undefined;
  readonly now: Date;
  readonly redactQuery: boolean;
  /**
   * The roles/scopes that satisfied the rule. Default: all that the verified token carried (the
   * ones the policy looked at).
   */
  readonly counted?: { readonly roles?: readonly string[]; readonly scopes?: readonly string[] };
  /** Hash of a presented token that was not verified (e.g. bad signature), when known. */
  readonly rejectedTokenHash?: string | undefined;
  /** The policy's requirement outcomes. */
  readonly outcomes?: readonly RequirementOutcome[];
}

export const REDACTED = '[redacted]';

/** Bounds on what one record may hold: a 256 KiB path must not become a 256 KiB log line. */
const MAX = { path: 2048, query: 2048, short: 256, detail: 1024, list: 64, requirements: 32 } as const;

/** Capped, and with JWT-shaped substrings redacted (a client can put a token in the path). */
function cap(value: string, max: number): string {
  const capped = value.length <= max ? value : `${value.slice(0, max)}…[truncated ${value.length - max} chars]`;
  return redactJwts(capped);
}

/** Non-empty string, capped; else null. */
function opt(value: string | undefined, max: number = MAX.short): string | null {
  return value === undefined || value === '' ? null : cap(value, max);
}

function list(values: readonly string[] | undefined): string[] {
  if (values === undefined) return [];
  const out = values.slice(0, MAX.list).map((v) => cap(v, MAX.short));
  if (values.length > MAX.list) out.push(`…[${values.length - MAX.list} more]`);
  return out;
}

function isoTime(now: Date): string {
  // An invalid Date would make toISOString throw; building a record must never throw.
  return Number.isNaN(now.getTime()) ? new Date(0).toISOString() : now.toISOString();
}

/** Builds the audit record for one decision. Pure; never throws. */
export function buildAuditRecord(input: AuditInput): AuditRecord {
  const { decision, request } = input;
  const id = decision.identity;
  let query: string | null = null;
  if (request !== undefined && request.query !== '') query = input.redactQuery ? REDACTED : cap(request.query, MAX.query);

  return {
    time: isoTime(input.now),
    type: 'entra_authz.decision',
    decisionId: decision.id,
    decision: decision.kind,
    reason: decision.reason,
    rule: opt(decision.rule),
    mode: input.mode ?? 'grpc',
    dryRun: input.dryRun === true || decision.dryRun !== undefined,
    wouldDeny: decision.dryRun?.wouldDeny ?? null,
    detail: opt(decision.detail, MAX.detail),

    oid: opt(id?.oid),
    tid: opt(id?.tid),
    appId: opt(id?.appId),
    tokenType: id?.type ?? null,
    tokenVersion: id?.version ?? null,
    roles: list(input.counted?.roles ?? id?.roles),
    scopes: list(input.counted?.scopes ?? id?.scopes),
    requirements: (input.outcomes ?? []).slice(0, MAX.requirements).map((r) => ({
      requirement: cap(r.requirement, MAX.short),
      met: r.met,
      detail: cap(r.detail, MAX.short),
    })),
    uti: opt(id?.uti),
    tokenHash: opt(id?.tokenHash ?? input.rejectedTokenHash),

    method: opt(request?.method),
    host: opt(request?.host),
    path: opt(request?.path, MAX.path),
    query,
    sourceAddress: opt(request?.source.address),
    sourcePort: request !== undefined && request.source.port > 0 ? request.source.port : null,
    peerPrincipal: opt(input.peer?.principal || request?.source.principal),
    peerCertFingerprint: opt(input.peer?.fingerprintSha256),
    requestId: opt(request?.requestId),

    traceId: opt(input.traceId),
    spanId: opt(input.spanId),
    durationMs: Number.isFinite(input.durationMs) ? Math.round(input.durationMs * 1000) / 1000 : 0,
    cacheHit: input.tokenCacheHit ?? false,
  };
}

/**
 * Characters JSON.stringify leaves raw that still break or disguise a log line: DEL and the C1
 * controls (U+0085 is a line break to some tools), U+2028/U+2029 (line and paragraph separators),
 * zero-width and bidirectional controls (a crafted path could visually reorder a line), the BOM
 * and the interlinear annotation characters. C0 controls (\n, \r, \t, ESC …), quotes, backslashes
 * and lone surrogates are already escaped by JSON.stringify.
 */
const UNSAFE = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

const escapeChar = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * Serializes a record to exactly one line (with its `\n`). The extra escapes are valid JSON
 * escapes inside string literals, so `JSON.parse` gives back the original strings unchanged.
 */
export function serializeAuditRecord(record: AuditRecord): string {
  const json = JSON.stringify(record);
  // Every unsafe character is DEL or beyond ASCII: a line of plain ASCII needs no scan by UNSAFE.
  const plainAscii = Buffer.byteLength(json, 'utf8') === json.length && !json.includes('\u007f');
  return `${plainAscii ? json : json.replace(UNSAFE, escapeChar)}\n`;
}

// ---------------------------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------------------------

export type AuditSinkTarget =
  | 'stdout'
  | 'off'
  | { readonly file: string }
  /** Any line consumer (tests; or to share one stream with the application logger). */
  | { readonly write: (line: string) => void };

export interface AuditSinkOptions {
  readonly sink: AuditSinkTarget;
  /**
   * Fraction of allow decisions recorded, 0..1. Deny and unavailable decisions, and dry-run allows
   * that enforcement would have denied, are always recorded.
   */
  readonly sampleAllows: number;
  /** Random source in [0, 1) for sampling; injectable for tests. */
  readonly random?: () => number;
  /**
   * Called once per distinct error code when the sink fails (open or write). From then on records
   * are dropped until `reopen()`. Default: one loud line on stderr.
   */
  readonly onError?: (err: Error, target: string) => void;
  /** Called for every dropped record (sink failed or buffer full), e.g. to count it in metrics. */
  readonly onDrop?: (n: number) => void;
  /** Most bytes buffered in memory while the disk or pipe is slow; beyond that records are dropped. */
  readonly maxBufferBytes?: number;
  /**
   * Called once (per sink, and again after `reopen()`) when the buffer first overflows and records
   * start being dropped. Default: one line on stderr.
   */
  readonly onOverflow?: (maxBufferBytes: number, target: string) => void;
}

/** Default bound on buffered audit bytes. */
export const DEFAULT_AUDIT_BUFFER_BYTES = 16 * 1024 * 1024;
/**
 * Lines are gathered up to this many bytes (or for at most FLUSH_INTERVAL_MS) and written together:
 * one write per batch instead of one per decision.
 */
const BATCH_BYTES = 64 * 1024;
const FLUSH_INTERVAL_MS = 100;

export interface AuditSinkStats {
  /** Records handed to the destination. */
  readonly written: number;
  /** Records lost because the sink failed or its buffer was full. */
  readonly dropped: number;
  /** Allow records skipped by sampling. */
  readonly sampledOut: number;
}

export interface AuditSink {
  /** False for the `off` sink: callers may skip building records. */
  readonly enabled: boolean;
  /**
   * Records one decision, unless sampled out or the sink is failing. Never throws, never blocks:
   * the line is queued and written asynchronously. Returns whether the record was queued.
   */
  write(record: AuditRecord): boolean;
  /**
   * Writes lines already serialised (and sampled) elsewhere — a worker process's records — as they
   * are, in one piece, so lines from different workers never interleave. `lines` holds `records`
   * complete lines. Returns whether they were queued (else they are counted as dropped).
   */
  writeLines(lines: string, records: number): boolean;
  /** Resolves once every queued line has been written (or the sink has failed). Never rejects. */
  flush(): Promise<void>;
  /** Flushes and closes the destination. Never rejects. */
  close(): Promise<void>;
  /** Reopens a file sink (after log rotation, or to retry after a failure). No-op for others. */
  reopen(): void;
  readonly stats: AuditSinkStats;
}

function defaultOnOverflow(maxBufferBytes: number, target: string): void {
  process.stderr.write(
    `entra-authz: audit records to ${target} are being DROPPED: more than ${maxBufferBytes} bytes are waiting to be written ` +
      '(telemetry.audit.maxBufferBytes). Checks continue; entra_authz_audit_records_dropped_total counts the loss.\n',
  );
}

function defaultOnError(err: Error, target: string): void {
  process.stderr.write(
    `entra-authz: AUDIT LOG FAILURE: cannot write audit records to ${target}: ${err.message}. ` +
      'Audit records are being DROPPED (checks continue) until the sink is reopened.\n',
  );
}

type Destination = ReturnType<typeof pino.destination>;

export function createAuditSink(options: AuditSinkOptions): AuditSink {
  const rate = options.sampleAllows;
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`sampleAllows must be within [0, 1], got ${rate}`);
  const random = options.random ?? Math.random;
  const onError = options.onError ?? defaultOnError;
  const onDrop = options.onDrop;
  const onOverflow = options.onOverflow ?? defaultOnOverflow;
  const maxBufferBytes = options.maxBufferBytes ?? DEFAULT_AUDIT_BUFFER_BYTES;
  const sink = options.sink;

  const stats = { written: 0, dropped: 0, sampledOut: 0 };
  const reported = new Set<string>();
  const target = sink === 'stdout' || sink === 'off' ? sink : 'file' in sink ? sink.file : 'custom writer';

  const report = (err: Error): void => {
    const code = (err as NodeJS.ErrnoException).code ?? err.name;
    if (reported.has(code)) return;
    reported.add(code);
    try {
      onError(err, target);
    } catch {
      // Reporting must not fail a check either.
    }
  };
  const drop = (n = 1): void => {
    stats.dropped += n;
    try {
      onDrop?.(n);
    } catch {
      // ignore
    }
  };

  /**
   * Sampling: every deny, every unavailable and every dry-run allow (a denial in all but effect) is
   * kept; plain allows are kept with probability `rate`.
   */
  const sampledOut = (record: AuditRecord): boolean => {
    if (record.decision !== 'allow' || record.wouldDeny !== null || rate >= 1) return false;
    return !(rate > 0 && random() < rate);
  };

  /**
   * What every target does with lines: refuse while the target is unusable, count. `put` writes
   * and returns false when the target dropped them; a throw is a failure.
   */
  const writeLinesWith = (lines: () => string, records: number, usable: boolean, put: (text: string) => boolean, fail: (err: Error) => void): boolean => {
    if (!usable) {
      drop(records);
      return false;
    }
    try {
      if (!put(lines())) {
        drop(records);
        return false;
      }
      stats.written += records;
      return true;
    } catch (err) {
      fail(err instanceof Error ? err : new Error(String(err)));
      drop(records);
      return false;
    }
  };
  /** And with a record: sampled first, serialized once. */
  const writeWith = (record: AuditRecord, usable: boolean, put: (line: string) => boolean, fail: (err: Error) => void): boolean => {
    if (sampledOut(record)) {
      stats.sampledOut++;
      return false;
    }
    return writeLinesWith(() => serializeAuditRecord(record), 1, usable, put, fail);
  };

  if (sink === 'off') {
    return {
      enabled: false,
      write: () => false,
      writeLines: () => false,
      flush: () => Promise.resolve(),
      close: () => Promise.resolve(),
      reopen: () => undefined,
      get stats() {
        return { ...stats };
      },
    };
  }

  if (typeof sink === 'object' && 'write' in sink) {
    let failed = false;
    const put = (line: string): boolean => {
      sink.write(line);
      return true;
    };
    const fail = (err: Error): void => {
      failed = true;
      report(err);
    };
    return {
      enabled: true,
      write: (record) => writeWith(record, !failed, put, fail),
      writeLines: (lines, records) => writeLinesWith(() => lines, records, !failed, put, fail),
      flush: () => Promise.resolve(),
      close: () => Promise.resolve(),
      reopen: () => {
        failed = false;
        reported.clear();
      },
      get stats() {
        return { ...stats };
      },
    };
  }

  // stdout or a file, through pino's asynchronous destination (sonic-boom): lines are buffered and
  // written with fs.write off the check's path, in batches; a full pipe or slow disk makes the
  // buffer grow up to maxBufferBytes, then records are dropped rather than blocking or exhausting
  // memory.
  const dest: string | number = sink === 'stdout' ? 1 : sink.file;
  let overflowReported = false;
  /** The buffer is full (the caller counts the drop): reported once. */
  const overflowed = (): void => {
    if (overflowReported) return;
    overflowReported = true;
    try {
      onOverflow(maxBufferBytes, target);
    } catch {
      // Reporting must not fail a check.
    }
  };

  let stream: Destination;
  let failed = false;
  let closed = false;
  let queued = 0;
  let flushed = 0;
  let droppedInWrite = false;
  let waiters: (() => void)[] = [];

  const settle = (): void => {
    if (failed || closed || flushed >= queued) {
      const w = waiters;
      waiters = [];
      for (const resolve of w) resolve();
    }
  };

  const open = (): Destination => {
    const s = pino.destination({
      dest,
      sync: false,
      // Batches are gathered here (see `put`): the destination writes whatever it is handed.
      minLength: 0,
      contentMode: 'buffer',
      maxLength: maxBufferBytes,
      mkdir: false,
      append: true,
    });
    // Without an 'error' listener an unwritable file would crash the process.
    s.on('error', (err: Error) => {
      // pino flushes async destinations synchronously at process exit; on a destination that
      // failed (never opened, or a dead disk) that flush would throw from the exit handler. The
      // records are already counted as lost, so make it a no-op — as pino itself does on EPIPE.
      s.flushSync = () => undefined;
      if (s !== stream) return;
      failed = true;
      report(err);
      settle();
    });
    s.on('write', (n: number) => {
      if (s !== stream) return;
      flushed += n;
      settle();
    });
    s.on('drop', () => {
      droppedInWrite = true;
    });
    queued = 0;
    flushed = 0;
    failed = false;
    return s;
  };
  stream = open();

  const fail = (err: Error): void => {
    failed = true;
    report(err);
  };

  // Lines are gathered into a batch and handed to the destination together, as bytes: sonic-boom
  // measures and appends to its pending string on every string write, which costs more per line
  // than the line itself, and converts each written string to a Buffer twice (RSS crept up with
  // audit to a file).
  // A quarter of the bound at most, so a batch fits while earlier ones are still being written.
  const batchLimit = Math.min(BATCH_BYTES, Math.floor(maxBufferBytes / 4));
  let batch: string[] = [];
  let batchLength = 0;
  let batchRecords = 0;
  /** Hands the batch to the destination; a batch the full buffer refuses is counted as dropped. */
  const handOff = (): void => {
    if (batch.length === 0) return;
    const bytes = Buffer.from(batch.join(''), 'utf8');
    const records = batchRecords;
    batch = [];
    batchLength = 0;
    batchRecords = 0;
    droppedInWrite = false;
    try {
      // contentMode 'buffer' takes bytes; sonic-boom's typings only name strings.
      stream.write(bytes as unknown as string);
    } catch (err) {
      fail(err instanceof Error ? err : new Error(String(err)));
      stats.written -= records;
      drop(records);
      return;
    }
    if (droppedInWrite) {
      overflowed();
      stats.written -= records;
      drop(records);
      return;
    }
    queued += bytes.length;
  };
  // Handed over at the end of the tick at the latest: a process that exits keeps at most the
  // records of its last tick from pino's flush at exit.
  let handOffScheduled = false;
  const handOffLater = (): void => {
    handOffScheduled = false;
    if (!failed && !closed) handOff();
  };
  const put = (lines: string, records: number): boolean => {
    batch.push(lines);
    batchLength += lines.length;
    batchRecords += records;
    if (batchLength >= batchLimit) handOff();
    else if (!handOffScheduled) {
      handOffScheduled = true;
      setImmediate(handOffLater);
    }
    return true;
  };

  /** Writes what is gathered now; never throws (a failed stream has reported itself already). */
  const writeBatch = (): void => {
    if (failed || closed) return;
    handOff();
    if (flushed >= queued) return;
    try {
      stream.flush();
    } catch {
      // Not open, or destroyed: its 'error' event settles waiters and counts the loss.
    }
  };
  // Not sonic-boom's own periodicFlush: its timer throws, uncaught, on a stream that never opened.
  const batchTimer = setInterval(writeBatch, FLUSH_INTERVAL_MS);
  batchTimer.unref();

  return {
    enabled: true,
    write: (record) => writeWith(record, !failed && !closed, (line) => put(line, 1), fail),
    writeLines: (lines, records) => writeLinesWith(() => lines, records, !failed && !closed, (text) => put(text, records), fail),
    flush() {
      if (failed || closed) return Promise.resolve();
      handOff();
      if (failed || flushed >= queued) return Promise.resolve();
      // Write the batch now rather than at the next tick of the timer.
      writeBatch();
      return new Promise<void>((resolve) => waiters.push(resolve));
    },
    async close() {
      if (closed) return;
      await this.flush();
      clearInterval(batchTimer);
      closed = true;
      settle();
      if (failed) return;
      const s = stream;
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.once('error', () => resolve());
        try {
          s.end();
        } catch {
          resolve();
        }
      });
    },
    reopen() {
      overflowReported = false;
      if (closed || sink === 'stdout') return;
      if (failed) {
        // Start over with a fresh destination: the failed one may never become ready.
        reported.clear();
        const old = stream;
        stream = open();
        try {
          old.destroy();
        } catch {
          // It may never have opened; nothing to release then.
        }
        return;
      }
      try {
        stream.reopen();
      } catch (err) {
        fail(err instanceof Error ? err : new Error(String(err)));
      }
    },
    get stats() {
      return { ...stats };
    },
  };
}
