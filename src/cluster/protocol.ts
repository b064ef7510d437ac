/**
 * Messages between the primary process and its workers (node:cluster IPC). Everything crossing
 * is plain JSON; nothing secret travels (no tokens: key documents are public, audit lines are
 * already redacted).
 */

/** Worker → primary. */
export type WorkerMessage =
  /** The worker listens for messages now: the primary answers with its configuration (`reload`). */
  | { readonly type: 'entra-authz:started' }
  /** The worker's gRPC listener is up and its serving state (keys loaded, not shutting down). */
  | { readonly type: 'entra-authz:serving'; readonly serving: boolean }
  /** A key document request, answered by the primary's shared fetch. */
  | { readonly type: 'entra-authz:fetch'; readonly id: number; readonly url: string }
  /** Complete audit lines (each ending in `\n`), in order. */
  | { readonly type: 'entra-authz:audit'; readonly lines: string; readonly records: number }
  /** The answer to a `reload`. */
  | { readonly type: 'entra-authz:reloaded'; readonly id: number; readonly error?: string }
  /** The answer to a `metrics` request: prom-client's `getMetricsAsJSON()`. */
  | { readonly type: 'entra-authz:metrics'; readonly id: number; readonly metrics: unknown };

/** Primary → worker. */
export type PrimaryMessage =
  | {
      readonly type: 'entra-authz:fetched';
      readonly id: number;
      readonly status?: number;
      readonly contentType?: string;
      readonly body?: string;
      readonly error?: string;
    }
  /** Install this configuration file text (already validated by the primary). */
  | { readonly type: 'entra-authz:reload'; readonly id: number; readonly text: string }
  | { readonly type: 'entra-authz:reload-certificates' }
  | { readonly type: 'entra-authz:metrics'; readonly id: number }
  /** Stop accepting, drain within the grace period, exit 0. */
  | { readonly type: 'entra-authz:shutdown' };

export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string' && (value as { type: string }).type.startsWith('entra-authz:');
}
