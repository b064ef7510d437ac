import { request as httpRequest } from 'node:http';
import type { Decision } from '../../src/core/decision.js';
import { tokenIdentity as identity } from '../fixtures/identity.js';
import type { RequestView } from '../../src/core/request.js';

export { APP_ID, OID, TENANT, tokenIdentity as identity } from '../fixtures/identity.js';

export function allow(overrides: Partial<Decision> = {}): Decision {
  return {
    id: 'dec-allow-1',
    kind: 'allow',
    reason: 'allowed',
    rule: 'orders-read',
    identity: identity(),
    detail: '',
    ...overrides,
  } as Decision;
}

export function deny(overrides: Partial<Decision> = {}): Decision {
  return {
    id: 'dec-deny-1',
    kind: 'deny',
    reason: 'missing_role',
    rule: 'orders-write',
    identity: identity(),
    detail: 'required all of Orders.Admin',
    ...overrides,
  } as Decision;
}

export function requestView(overrides: Partial<RequestView> & { headerList?: [string, string][] } = {}): RequestView {
  const { headerList, ...rest } = overrides;
  const headers = new Map<string, string[]>();
  for (const [k, v] of headerList ?? [['x-request-id', 'req-123']]) {
    const list = headers.get(k);
    if (list) list.push(v);
    else headers.set(k, [v]);
  }
  return {
    envoyId: '9876',
    method: 'GET',
    host: 'orders.example.com',
    path: '/orders/42',
    pathProblem: '',
    query: '',
    scheme: 'https',
    protocol: 'HTTP/2',
    headers,
    contextExtensions: {},
    source: { address: '10.1.2.3', port: 51234, principal: 'spiffe://cluster.local/ns/shop/sa/checkout', certificate: '' },
    destination: { address: '10.9.9.9', port: 8443, principal: '', certificate: '' },
    requestId: headers.get('x-request-id')?.[0] ?? '',
    ...rest,
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A plain GET (or other method) over loopback, no keep-alive. */
export function httpGet(url: string, method = 'GET'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (samples only; comments checked separately). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let lm: RegExpExecArray | null;
    while ((lm = re.exec(body)) !== null) {
      labels[lm[1] as string] = (lm[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const raw = m[3] as string;
    samples.push({ name: m[1] as string, labels, value: raw === '+Inf' ? Infinity : Number(raw) });
  }
  return samples;
}

export function findSample(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}
