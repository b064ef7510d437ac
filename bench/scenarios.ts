/**
 * What the benchmark measures: the servers (configurations) and the Envoy-shaped CheckRequests sent
 * to them. Every request is first sent once through a gRPC client (or, in HTTP mode, an HTTP
 * client) and its answer checked, so a scenario can never silently measure the wrong outcome.
 */
import { request as httpRequest } from 'node:http';
import { credentials } from '@grpc/grpc-js';
import type { CheckRequestOptions } from '../src/cli/check.js';
import { DEMO } from '../src/dev/emulator.js';
import { createAuthorizationClient, loadAuthorizationService } from '../src/server/protos.js';
import { CHECKOUT_SPIFFE, envoyEncode, FRONT_PROXY_SPIFFE, type TestPki } from '../test/fixtures/certs.js';

export interface ServerSpec {
  readonly key: string;
  readonly name: string;
  readonly config: unknown;
}

export interface ServerOptions {
  readonly authority: string;
  /** Audit records to stdout (default), off, or appended to a file. */
  readonly audit?: boolean | { readonly file: string };
  /** The verified-token cache: off, or sized other than the shipped default. */
  readonly tokenCache?: false | { readonly maxEntries: number; readonly ttlSeconds: number };
  readonly workers?: number;
  /**
   * Also serve HTTP authorization requests (`server.http`), with a path-matched rule for the 403
   * case: proxies cannot send context extensions.
   */
  readonly http?: boolean;
  /** CA bundle file and trusted front proxy for the peer-identity server. */
  readonly peer?: { readonly caBundleFile: string };
}

const SHOP = 'spiffe://cluster.local/ns/shop/sa/*';
/** Paths below this need Orders.Write (with `http`), which the reader token lacks. */
export const WRITE_PATH = '/orders/new';

function auditConfig(audit: ServerOptions['audit']): unknown {
  if (audit === false) return { sink: 'off' };
  if (audit === true || audit === undefined) return { sink: 'stdout' };
  return { sink: 'file', file: audit.file };
}

/** The product's configuration for one server; everything not named here is the shipped default. */
export function productConfig(o: ServerOptions): unknown {
  return {
    server: {
      listen: '127.0.0.1:0',
      ...(o.workers !== undefined ? { workers: o.workers } : {}),
      ...(o.http ? { http: { listen: '127.0.0.1:0' } } : {}),
    },
    entra: {
      authority: o.authority,
      tenants: [DEMO.tenantId],
      audiences: [DEMO.api.appId],
      ...(o.tokenCache === false ? { tokenCache: { maxEntries: 0 } } : o.tokenCache ? { tokenCache: o.tokenCache } : {}),
    },
    ...(o.peer ? { peer: { caBundleFile: o.peer.caBundleFile, xfcc: { trusted: true, proxies: [FRONT_PROXY_SPIFFE] } } } : {}),
    rules: [
      ...(o.peer ? [{ name: 'shop', match: { contextExtensions: { route: 'shop' } }, require: { peer: { spiffePatterns: [SHOP] }, roles: { anyOf: ['Orders.Read'] } } }] : []),
      { name: 'orders-write', match: { contextExtensions: { policy: 'orders-write' } }, require: { roles: { anyOf: ['Orders.Write'] } } },
      ...(o.http ? [{ name: 'orders-new', match: { paths: [{ prefix: WRITE_PATH }] }, require: { roles: { anyOf: ['Orders.Write'] } } }] : []),
      { name: 'orders-read', require: { roles: { anyOf: ['Orders.Read'] } } },
    ],
    telemetry: { admin: { listen: '127.0.0.1:0' }, audit: auditConfig(o.audit) },
  };
}

export type Expected = { readonly kind: 'allow'; readonly peer?: string } | { readonly kind: 'deny'; readonly httpStatus: string };

export interface RequestSpec {
  readonly key: string;
  readonly options: CheckRequestOptions;
  readonly expected: Expected;
}

/** The requests, from one reader token (holds Orders.Read only). */
export function requests(token: string, pki: TestPki): RequestSpec[] {
  const xfcc = [`By=${FRONT_PROXY_SPIFFE}`, `Hash=${pki.checkout.hashHex}`, `Cert="${envoyEncode(pki.checkout.certPem)}"`, `URI=${CHECKOUT_SPIFFE}`].join(';');
  const path = '/orders/42';
  return [
    { key: 'allow', options: { token, path }, expected: { kind: 'allow' } },
    { key: 'no-token', options: { path }, expected: { kind: 'deny', httpStatus: 'Unauthorized' } },
    { key: 'missing-role', options: { token, path, contextExtensions: { policy: 'orders-write' } }, expected: { kind: 'deny', httpStatus: 'Forbidden' } },
    {
      key: 'peer-certificate',
      options: { token, path, contextExtensions: { route: 'shop' }, sourcePrincipal: CHECKOUT_SPIFFE, sourceCertificate: envoyEncode(pki.checkout.certPem) },
      expected: { kind: 'allow', peer: CHECKOUT_SPIFFE },
    },
    {
      key: 'xfcc',
      options: {
        token,
        path,
        contextExtensions: { route: 'shop' },
        sourcePrincipal: FRONT_PROXY_SPIFFE,
        sourceCertificate: envoyEncode(pki.frontProxy.certPem),
        headers: { 'x-forwarded-client-cert': xfcc },
      },
      expected: { kind: 'allow', peer: CHECKOUT_SPIFFE },
    },
  ];
}

/**
 * Frames request bodies as gRPC does: compression flag, 4-byte length, the protobuf message.
 * Loading the protos takes tens of milliseconds, so a run that frames many bodies makes one framer.
 */
export function grpcFramer(): (request: unknown) => Buffer {
  const serialize = loadAuthorizationService()['Check']!.requestSerialize;
  return (request) => {
    const message = serialize(request);
    const header = Buffer.alloc(5);
    header.writeUInt32BE(message.length, 1);
    return Buffer.concat([header, message]);
  };
}

/** One request body as gRPC frames it. */
export function grpcFrame(request: unknown): Buffer {
  return grpcFramer()(request);
}

type CheckAnswer = {
  status?: { code?: number };
  ok_response?: { headers?: { header?: { key?: string; value?: string } }[] };
  denied_response?: { status?: { code?: string } };
};

/** Sends `request` once and throws unless the answer is `expected`. */
export async function assertOutcome(address: string, request: unknown, expected: Expected, what: string): Promise<void> {
  const client = createAuthorizationClient(address, credentials.createInsecure());
  try {
    const answer = await new Promise<CheckAnswer>((resolve, reject) =>
      client.Check(request, (err, res) => (err ? reject(err) : resolve((res ?? {}) as CheckAnswer))),
    );
    const peer = answer.ok_response?.headers?.find((h) => h.header?.key === 'x-entra-peer-principal')?.header?.value;
    const ok =
      expected.kind === 'allow'
        ? (answer.status?.code ?? 0) === 0 && answer.ok_response !== undefined && (expected.peer === undefined || peer === expected.peer)
        : answer.denied_response?.status?.code === expected.httpStatus;
    if (!ok) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(answer).slice(0, 600)}`);
  } finally {
    client.close();
  }
}

const STATUS_CODES: Record<string, number> = { Unauthorized: 401, Forbidden: 403 };

/**
 * Sends one HTTP authorization request (as a forward-auth proxy would: GET, no body) and throws
 * unless the answer is `expected`: 200 with a decision id, or the deny's status.
 */
export async function assertHttpOutcome(address: string, path: string, headers: Readonly<Record<string, string>>, expected: Expected, what: string): Promise<void> {
  const answer = await new Promise<{ status: number; decisionId: unknown; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: address.slice(0, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)), path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, decisionId: res.headers['x-entra-decision-id'], body }));
    });
    req.on('error', reject);
    req.end();
  });
  const ok = expected.kind === 'allow' ? answer.status === 200 && typeof answer.decisionId === 'string' : answer.status === STATUS_CODES[expected.httpStatus];
  if (!ok) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${answer.status} ${answer.body.slice(0, 600)}`);
}
