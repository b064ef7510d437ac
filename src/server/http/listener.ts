/**
 * The HTTP listener for forward-auth requests: plain HTTP, or TLS (optionally mutual, with the same
 * allow-list of client identities and certificate reload as the gRPC listener).
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { formatListen, parseListen } from '../../config/listen.js';
import type { TlsListenerConfig } from '../../config/schema-mtls.js';
import type { ListenerOptions, RunningListener } from '../listener.js';
import { createClientAllowList, watchTlsMaterial, type TlsMaterial, type TlsMaterialWatcher } from '../tls.js';
import { createHttpHandler, UNPARSABLE_REQUEST, type HttpRuntime } from './handler.js';

export interface HttpListenerConfig {
  /** `host:port`; port 0 picks a free port. */
  readonly listen: string;
  readonly tls?: TlsListenerConfig | undefined;
}

export interface HttpServerOptions extends ListenerOptions {
  /** Largest single header the runtime accepts (`server.maxHeaderBytes`); Node's parser gets room for it. */
  readonly maxHeaderBytes: number;
}

export type HttpServer = RunningListener;

// Room for the other headers of a request whose largest header is at the configured limit.
const HEADER_SLACK_BYTES = 64 * 1024;
// Longer than the idle timeouts proxies keep upstream connections for (nginx 60 s), so a proxy
// never sends a request on a connection this server is closing.
const KEEP_ALIVE_MS = 75_000;

const secureOptions = (m: TlsMaterial) => ({ cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) });

function rawAnswer(status: number, headers: readonly (readonly [string, string])[], body: string): string {
  const lines = [`HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : 'Error'}`, ...headers.map(([k, v]) => `${k}: ${v}`)];
  return `${lines.join('\r\n')}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** Serves forward-auth requests for `runtime` on `config.listen`. */
export async function startHttpServer(runtime: HttpRuntime, config: HttpListenerConfig, options: HttpServerOptions): Promise<HttpServer> {
  const { log } = options;
  const handler = createHttpHandler(runtime, log);
  const serverOptions = { maxHeaderSize: options.maxHeaderBytes + HEADER_SLACK_BYTES, keepAliveTimeout: KEEP_ALIVE_MS };

  let files: TlsMaterialWatcher | undefined;
  let server: Server;
  const tls = config.tls;
  if (tls) {
    files = await watchTlsMaterial(tls, {
      ...options.tls,
      onReload: (e) => log.info({ changed: e.changed, certificate: e.certificate }, 'HTTP listener TLS material reloaded'),
      onError: (problem) => log.error({ problem }, 'HTTP listener TLS material not reloaded; serving the last good certificate'),
    });
    const https = createHttpsServer(
      { ...serverOptions, ...secureOptions(files.material()), requestCert: tls.caFile !== undefined, rejectUnauthorized: tls.requireClientCert },
      handler,
    );
    files.onChange((material) => https.setSecureContext(secureOptions(material)));
    if (tls.allowedClients !== undefined) {
      const refusalOf = createClientAllowList(tls.allowedClients);
      https.on('secureConnection', (socket: TLSSocket) => {
        const cert = socket.authorized ? socket.getPeerCertificate() : undefined;
        const refusal = refusalOf(cert?.raw ? { raw: cert.raw, fingerprint256: cert.fingerprint256 } : undefined);
        if (refusal === undefined) return;
        log.warn({ detail: refusal.detail }, 'HTTP client refused');
        socket.destroy();
      });
    }
    server = https;
  } else {
    server = createHttpServer(serverOptions, handler);
  }

  // Requests Node cannot parse (oversized or broken headers) still get a deny with a reason code.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    log.warn({ error: err.code ?? err.name }, 'unparsable HTTP authorization request; denied');
    if (socket.writable) socket.end(rawAnswer(UNPARSABLE_REQUEST.status, UNPARSABLE_REQUEST.headers, UNPARSABLE_REQUEST.body));
    else socket.destroy();
  });

  const { host, port } = parseListen(config.listen);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    files?.close();
    throw err;
  }
  const address = formatListen({ host, port: (server.address() as AddressInfo).port });
  log.info({ address, tls: tls !== undefined, clientCertificates: tls?.requireClientCert ?? false }, 'HTTP authorization server listening');

  return {
    address,
    reloadCertificates: () => files?.reload() ?? Promise.resolve(false),
    async close(graceMs) {
      files?.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn({ graceMs }, 'grace period over; closing remaining HTTP connections');
          server.closeAllConnections();
        }, graceMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
