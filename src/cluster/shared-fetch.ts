/**
 * Signing-key documents fetched once for all workers. Each worker keeps its own key store (with
 * its own unknown-kid cooldown); their requests go to the primary, which joins identical requests
 * in flight and reuses an answer for `reuseMs` — the unknown-kid cooldown — so N workers cost Entra
 * what one process costs.
 */
import type { PrimaryMessage, WorkerMessage } from './protocol.js';

export interface FetchedDocument {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export interface SharedFetchOptions {
  readonly fetch: typeof globalThis.fetch;
  /** How long an answer is reused for other workers. */
  readonly reuseMs: number;
  /** Bound on one fetch; the timer is our own (see docs/architecture.md on outbound calls). */
  readonly timeoutMs: number;
  readonly now: () => number;
  /** Largest document kept (characters); larger ones fail as the key store would refuse them. */
  readonly maxChars?: number;
}

/** Primary side: one fetch per URL per `reuseMs`, shared by every worker asking. */
export function createSharedFetch(options: SharedFetchOptions): (url: string) => Promise<FetchedDocument> {
  const maxChars = options.maxChars ?? 1024 * 1024;
  const answers = new Map<string, { readonly at: number; readonly document: Promise<FetchedDocument> }>();

  const fetchOnce = async (url: string): Promise<FetchedDocument> => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), options.timeoutMs);
    try {
      const res = await options.fetch(url, { signal: controller.signal, headers: { accept: 'application/json' } });
      const body = await res.text();
      if (body.length > maxChars) throw new Error(`${url} is too large`);
      return { status: res.status, contentType: res.headers.get('content-type') ?? 'application/json', body };
    } finally {
      clearTimeout(timer);
    }
  };

  return (url) => {
    const t = options.now();
    const known = answers.get(url);
    if (known !== undefined && t - known.at < options.reuseMs) return known.document;
    const document = fetchOnce(url);
    answers.set(url, { at: t, document });
    // A failure is not reused: the next worker asking tries again (its own cooldown still applies).
    document.catch(() => {
      if (answers.get(url)?.document === document) answers.delete(url);
    });
    return document;
  };
}

/** Handles one worker's `fetch` message with `shared`, answering on `reply`. */
export function answerFetch(message: Extract<WorkerMessage, { type: 'entra-authz:fetch' }>, shared: (url: string) => Promise<FetchedDocument>, reply: (m: PrimaryMessage) => void): void {
  shared(message.url).then(
    (d) => reply({ type: 'entra-authz:fetched', id: message.id, status: d.status, contentType: d.contentType, body: d.body }),
    (err: unknown) => reply({ type: 'entra-authz:fetched', id: message.id, error: err instanceof Error ? `${err.name}: ${err.message}` : 'fetch failed' }),
  );
}

/** Worker side: a `fetch` for the key store that asks the primary. Honours the caller's abort signal. */
export function createWorkerFetch(send: (m: WorkerMessage) => void, onAnswer: (listener: (m: PrimaryMessage) => void) => void): typeof globalThis.fetch {
  let next = 0;
  const waiting = new Map<number, { resolve(r: Response): void; reject(e: Error): void }>();
  onAnswer((m) => {
    if (m.type !== 'entra-authz:fetched') return;
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if (m.error !== undefined || m.status === undefined) w.reject(new Error(m.error ?? 'fetch failed'));
    else w.resolve(new Response(m.body ?? '', { status: m.status, headers: { 'content-type': m.contentType ?? 'application/json' } }));
  });
  return ((input: string | URL | Request, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const signal = init?.signal ?? undefined;
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      const id = ++next;
      const onAbort = (): void => {
        waiting.delete(id);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiting.set(id, {
        resolve: (r) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      send({ type: 'entra-authz:fetch', id, url });
    });
  }) as typeof globalThis.fetch;
}
