import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';

export interface HttpReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/**
 * Sends one HTTP/1.1 request with headers exactly as given (repeats kept, names as spelled), as a
 * proxy or a hostile client would.
 */
export function send(
  url: string,
  options: { method?: string; headers?: readonly (readonly [string, string])[]; tls?: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'servername'> } = {},
): Promise<HttpReply> {
  const target = new URL(url);
  const given = options.headers ?? [];
  // With headers given as a list Node adds no Host header of its own.
  const withHost = given.some(([k]) => k.toLowerCase() === 'host') ? given : [['Host', target.host] as const, ...given];
  const flat = withHost.flatMap(([k, v]) => [k, v]);
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: options.method ?? 'GET',
        headers: flat,
        agent: false,
        ...options.tls,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}
