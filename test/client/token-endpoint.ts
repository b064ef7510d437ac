import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenEndpointRequest {
  readonly path: string;
  readonly contentType: string;
  readonly form: URLSearchParams;
}

export type TokenEndpointReply = { status: number; body: string; contentType?: string };

/** A local node:http client-credentials endpoint whose answers the test decides. */
export interface TokenEndpoint {
  readonly url: string;
  readonly requests: TokenEndpointRequest[];
  reply: (req: TokenEndpointRequest) => TokenEndpointReply;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startTokenEndpoint(tenant = '11111111-2222-4333-8444-555555555555'): Promise<TokenEndpoint> {
  const endpoint: Omit<TokenEndpoint, 'url' | 'close'> & { reply: TokenEndpoint['reply'] } = {
    requests: [],
    reply: () => ({ status: 500, body: '{}' }),
  };
  const server: Server = createServer((req, res) => {
    readBody(req).then((text) => {
      const request: TokenEndpointRequest = {
        path: req.url ?? '',
        contentType: req.headers['content-type'] ?? '',
        form: new URLSearchParams(text),
      };
      endpoint.requests.push(request);
      const answer = endpoint.reply(request);
      res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'application/json' });
      res.end(answer.body);
    }, () => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(endpoint, {
    url: `http://127.0.0.1:${port}/${tenant}/oauth2/v2.0/token`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
