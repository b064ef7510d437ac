/**
 * The HTTP authorization adapter: a forward-auth request (Envoy http_service, nginx auth_request,
 * Caddy/Traefik forward auth) → the normalised `RequestView` → the runtime's check → the
 * `ResponsePlan` → an HTTP answer. It knows the HTTP shapes and nothing of the engine; the request
 * body is never read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { forwardAuthStatus, toForwardAuthAnswer, type ForwardAuthAnswer } from '../../core/forward-auth-response.js';
import { forwardAuthEndpoint, parseForwardAuthRequest } from '../../core/forward-auth.js';
import { whenReady } from '../../core/maybe-async.js';
import { REASONS } from '../../core/reasons.js';
import type { ResponsePlan } from '../../core/response.js';
import type { Runtime } from '../../runtime/compose.js';
import type { Logger } from '../../telemetry/logger.js';

/** What the adapter needs of the runtime. */
export type HttpRuntime = Pick<Runtime, 'current' | 'isServing'>;

/** Paths answered on the HTTP listener itself, for the proxy's health checks. */
export const PROBE_PATHS = { health: '/healthz', ready: '/readyz' } as const;

const json = (body: Record<string, string>): string => JSON.stringify(body);

/**
 * Answer when even building an answer failed: a deny, never a 2xx, and never a 5xx either (which
 * Envoy's `failure_mode_allow` could turn into an allow).
 */
const LAST_RESORT: ForwardAuthAnswer = {
  status: 403,
  headers: [['content-type', 'application/json'], ['cache-control', 'no-store']],
  body: json({ error: 'internal_error', message: REASONS.internal_error.message }),
};

/** The answer to a request Node could not parse (e.g. headers over `maxHeaderSize`). */
export const UNPARSABLE_REQUEST: ForwardAuthAnswer = {
  status: REASONS.request_malformed.httpStatus,
  headers: [['content-type', 'application/json'], ['cache-control', 'no-store'], ['connection', 'close']],
  body: json({ error: 'request_malformed', message: REASONS.request_malformed.message }),
};

export function writeAnswer(res: ServerResponse, answer: ForwardAuthAnswer): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string> = { 'content-length': String(Buffer.byteLength(answer.body)) };
  for (const [name, value] of answer.headers) headers[name] = value;
  res.writeHead(answer.status, headers);
  res.end(answer.body);
}

function probe(res: ServerResponse, ok: boolean): void {
  writeAnswer(res, {
    status: ok ? 200 : 503,
    headers: [['content-type', 'text/plain; charset=utf-8'], ['cache-control', 'no-store']],
    body: ok ? 'ok\n' : 'not serving\n',
  });
}

/** The request handler. Catches everything: a failure anywhere answers with a deny. */
export function createHttpHandler(runtime: HttpRuntime, log: Logger) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const failed = (err: unknown): void => {
      log.error({ error: err instanceof Error ? err.name : typeof err }, 'HTTP authorization answer could not be built; denied');
      writeAnswer(res, LAST_RESORT);
    };
    try {
      const target = req.url ?? '';
      if (target === PROBE_PATHS.health) return probe(res, true);
      if (target === PROBE_PATHS.ready) return probe(res, runtime.isServing());
      const snapshot = runtime.current();
      const parsed = parseForwardAuthRequest(
        { method: req.method ?? '', target, rawHeaders: req.rawHeaders, protocol: `HTTP/${req.httpVersion}` },
        snapshot.limits,
      );
      const tokenHeader = snapshot.config.entra.tokenHeader;
      const via = {
        mode: 'http',
        http: { method: req.method ?? '', ...forwardAuthEndpoint(parsed) },
        answerStatus: (plan: ResponsePlan) => forwardAuthStatus(plan, parsed.shape),
      } as const;
      const send = (plan: ResponsePlan): void => {
        try {
          writeAnswer(res, toForwardAuthAnswer(plan, parsed.shape, tokenHeader));
        } catch (err) {
          failed(err);
        }
      };
      whenReady(snapshot.check(parsed, via), send, failed);
    } catch (err) {
      failed(err);
    }
  };
}
