import { parseArgs } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import { createAuthorizationClient } from '../server/protos.js';

export interface CheckRequestOptions {
  readonly method?: string;
  readonly path?: string;
  readonly host?: string;
  readonly token?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly contextExtensions?: Readonly<Record<string, string>>;
  readonly sourcePrincipal?: string;
  /** URL-encoded PEM, as Envoy sends it. */
  readonly sourceCertificate?: string;
}

/** A CheckRequest shaped as Envoy's ext_authz filter builds one for an HTTP/2 request. */
export function envoyCheckRequest(opts: CheckRequestOptions = {}): Record<string, unknown> {
  const method = opts.method ?? 'GET';
  const path = opts.path ?? '/';
  const host = opts.host ?? 'api.example.com';
  const headers: Record<string, string> = {
    ':authority': host,
    ':method': method,
    ':path': path,
    ':scheme': 'https',
    'user-agent': 'entra-authz-check',
    'x-request-id': crypto.randomUUID(),
    ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
  };
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;
  return {
    attributes: {
      source: {
        address: { socket_address: { address: '127.0.0.1', port_value: 50_000 } },
        principal: opts.sourcePrincipal ?? '',
        certificate: opts.sourceCertificate ?? '',
      },
      destination: { address: { socket_address: { address: '127.0.0.1', port_value: 8443 } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
        http: { id: '1', method, headers, path, host, scheme: 'https', protocol: 'HTTP/2', size: '0' },
      },
      context_extensions: { ...(opts.contextExtensions ?? {}) },
    },
  };
}

function pairs(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const i = item.indexOf('=');
    if (i <= 0) throw new Error(`expected key=value, got ${JSON.stringify(item)}`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** `entra-authz check`: plays Envoy for one request and prints the decision. */
export async function runCheck(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      server: { type: 'string', default: '127.0.0.1:9001' },
      token: { type: 'string' },
      path: { type: 'string', default: '/' },
      method: { type: 'string', default: 'GET' },
      host: { type: 'string', default: 'api.example.com' },
      context: { type: 'string', multiple: true },
      header: { type: 'string', multiple: true },
    },
  });
  const client = createAuthorizationClient(values.server, credentials.createInsecure());
  const request = envoyCheckRequest({
    method: values.method,
    path: values.path,
    host: values.host,
    token: values.token,
    headers: pairs(values.header),
    contextExtensions: pairs(values.context),
  });
  try {
    const response = await new Promise<Record<string, unknown>>((resolve, reject) => {
      client.Check(request, (err, res) => (err ? reject(err) : resolve(res ?? {})));
    });
    console.log(JSON.stringify(summarize(response), null, 2));
    return (response['status'] as { code?: number } | undefined)?.code ? 1 : 0;
  } catch (err) {
    console.error(`Check failed: ${(err as Error).message}`);
    return 2;
  } finally {
    client.close();
  }
}

type HeaderOption = { header?: { key?: string; value?: string } };

/** A readable digest of a CheckResponse. */
function summarize(response: Record<string, unknown>): Record<string, unknown> {
  const status = response['status'] as { code?: number; message?: string } | undefined;
  const headers = (list: unknown): Record<string, string> =>
    Object.fromEntries(((list as HeaderOption[] | undefined) ?? []).map((h) => [h.header?.key ?? '', h.header?.value ?? '']));
  const ok = response['ok_response'] as { headers?: unknown; headers_to_remove?: string[] } | undefined;
  const denied = response['denied_response'] as { status?: { code?: unknown }; headers?: unknown; body?: string } | undefined;
  if (ok && !status?.code) {
    return { decision: 'allow', upstreamHeaders: headers(ok.headers), headersToRemove: ok.headers_to_remove ?? [] };
  }
  return {
    decision: 'deny',
    reason: status?.message,
    httpStatus: denied?.status?.code,
    headers: headers(denied?.headers),
    body: denied?.body,
  };
}
