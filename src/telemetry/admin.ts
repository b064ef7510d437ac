import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { parseListen } from '../config/listen.js';

/**
 * The admin HTTP listener: `/healthz` (the process is alive), `/readyz` (it can decide: keys loaded,
 * config valid) and `/metrics` (Prometheus text format). Kept apart from the gRPC port so that
 * probes and scrapes never compete with Envoy's checks, and so it can be firewalled separately.
 */

export interface Readiness {
  readonly ready: boolean;
  /** Shown in the /readyz body; keep it free of secrets (it is served without authentication). */
  readonly detail?: string | Readonly<Record<string, unknown>>;
}

export interface AdminServerOptions {
  /** `host:port` or `[v6]:port`; port 0 picks a free port. */
  readonly listen: string;
  /** Asked on every /readyz request; a throw counts as not ready. */
  readonly isReady: () => boolean | Readiness;
  /** What /metrics serves: a prom-client registry, or the aggregate of several processes. */
  readonly registry: Pick<Registry, 'metrics' | 'contentType'>;
}

export interface AdminServer {
  /** Base URL, e.g. `http://127.0.0.1:9090` (the real port when 0 was asked for). */
  readonly url: string;
  close(): Promise<void>;
}

const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
} as const;

function send(res: ServerResponse, status: number, contentType: string, body: string, head: boolean): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

function readiness(isReady: AdminServerOptions['isReady']): Readiness {
  try {
    const r = isReady();
    return typeof r === 'boolean' ? { ready: r } : r;
  } catch (err) {
    return { ready: false, detail: `readiness check failed: ${err instanceof Error ? err.name : typeof err}` };
  }
}

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { host, port } = parseListen(options.listen);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const head = req.method === 'HEAD';
    if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') {
      send(res, 404, 'text/plain; charset=utf-8', 'not found\n', head);
      return;
    }
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', false);
      return;
    }
    if (path === '/healthz') {
      send(res, 200, 'text/plain; charset=utf-8', 'ok\n', head);
    } else if (path === '/readyz') {
      const r = readiness(options.isReady);
      const body = JSON.stringify(r.detail === undefined ? { ready: r.ready } : { ready: r.ready, detail: r.detail });
      send(res, r.ready ? 200 : 503, 'application/json', `${body}\n`, head);
    } else {
      try {
        const text = await options.registry.metrics();
        send(res, 200, options.registry.contentType, text, head);
      } catch {
        send(res, 500, 'text/plain; charset=utf-8', 'metrics collection failed\n', head);
      }
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n', false);
      else res.destroy();
    });
  });
  // Probes and scrapes are tiny: do not let a slow client hold sockets open.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${addr.port}`,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
