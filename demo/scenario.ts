import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, Metadata, status, type CallCredentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { clientCredentialsTokenSource, createTokenProvider, entraCallCredentials } from '../src/client/index.js';
import type { DemoSettings } from './demo-values.js';
import { loadOrdersService, type Order } from './orders.js';

/**
 * The demo client's scenario: one allow, one 401, one 403 and a second allow, all through Envoy.
 * Each step states the outcome it expects; the process exits non-zero when any differs, so the
 * compose stack doubles as an end-to-end smoke test.
 */

export interface StepResult {
  readonly step: string;
  readonly expected: keyof typeof status;
  readonly got: keyof typeof status;
  readonly ok: boolean;
  readonly detail: string;
}

type Unary<Req> = (req: Req, md: Metadata, options: { deadline: Date; credentials?: CallCredentials; waitForReady?: boolean }, cb: (err: ServiceError | null, res?: Order) => void) => void;
type OrdersClient = Client & { GetOrder: Unary<{ id: string }>; CreateOrder: Unary<{ item: string; quantity: number }> };

const codeName = (code: number): keyof typeof status =>
  (Object.entries(status).find(([, v]) => v === code)?.[0] ?? 'UNKNOWN') as keyof typeof status;

export interface DemoOptions {
  readonly log?: (line: string) => void;
  /** Attempts while Envoy or entra-authz is still starting (UNAVAILABLE). Default 30. */
  readonly startupAttempts?: number;
  /** Pause between those attempts. Default 1000 ms. */
  readonly retryDelayMs?: number;
  readonly deadlineMs?: number;
}

export async function runDemo(settings: DemoSettings, options: DemoOptions = {}): Promise<StepResult[]> {
  const log = options.log ?? ((line: string) => console.log(line));
  const read = (name: string): Buffer => readFileSync(join(settings.certDir, name));
  const Orders = loadOrdersService();
  const client = new Orders(
    settings.envoyAddress,
    // mTLS to Envoy: the client certificate is the caller's workload identity (SPIFFE URI SAN).
    credentials.createSsl(read('ca.crt'), read('demo-client.key'), read('demo-client.crt')),
    { 'grpc.ssl_target_name_override': settings.envoyServerName },
  ) as unknown as OrdersClient;

  const tokenCredentials = (who: 'reader' | 'writer'): CallCredentials =>
    entraCallCredentials(
      createTokenProvider({
        source: clientCredentialsTokenSource({
          tokenEndpoint: settings.tokenEndpoint,
          clientId: settings[who].clientId,
          clientSecret: settings[who].clientSecret,
          scope: settings.scope,
          allowInsecureHttp: settings.allowInsecureTokenEndpoint,
        }),
      }),
    );
  const reader = tokenCredentials('reader');
  const writer = tokenCredentials('writer');

  const call = <Req>(method: Unary<Req>, req: Req, creds: CallCredentials | undefined): Promise<{ err: ServiceError | null; res?: Order }> =>
    new Promise((resolve) => {
      const opts = { deadline: new Date(Date.now() + (options.deadlineMs ?? 10_000)), waitForReady: true, ...(creds ? { credentials: creds } : {}) };
      method.call(client, req, new Metadata(), opts, (err, res) => resolve({ err, ...(res ? { res } : {}) }));
    });

  // Wait until the path through Envoy works at all (compose starts everything at once).
  const attempts = options.startupAttempts ?? 30;
  for (let i = 1; ; i++) {
    const probe = await call(client.GetOrder, { id: '1001' }, reader);
    const starting = probe.err?.code === status.UNAVAILABLE || probe.err?.code === status.DEADLINE_EXCEEDED;
    if (!starting || i >= attempts) break;
    log(`waiting for Envoy / entra-authz (${probe.err?.details ?? ''}) ...`);
    await new Promise((r) => setTimeout(r, options.retryDelayMs ?? 1000));
  }

  const results: StepResult[] = [];
  const step = async <Req>(name: string, expected: keyof typeof status, method: Unary<Req>, req: Req, creds: CallCredentials | undefined): Promise<void> => {
    const { err, res } = await call(method, req, creds);
    const got = codeName(err ? err.code : status.OK);
    let detail: string;
    if (err) {
      const challenge = err.metadata?.get('www-authenticate')[0];
      const decision = err.metadata?.get('x-entra-decision-id')[0];
      detail = [`grpc-message: ${err.details}`, challenge ? `www-authenticate: ${String(challenge)}` : '', decision ? `decision id: ${String(decision)}` : '']
        .filter(Boolean)
        .join('\n      ');
    } else {
      const c = res?.caller;
      detail = `order ${res?.id} (${res?.item} x${res?.quantity}); upstream saw app ${c?.app_id || '?'} oid ${c?.oid || '?'} roles [${c?.roles || ''}] peer ${c?.peer_uri || '?'} decision ${c?.decision_id || '?'}`;
    }
    const result = { step: name, expected, got, ok: got === expected, detail };
    results.push(result);
    log(`${result.ok ? 'PASS' : 'FAIL'}  ${name}\n      expected ${expected}, got ${got}\n      ${detail}`);
  };

  await step('reader reads an order (token with Orders.Read) -> allowed', 'OK', client.GetOrder, { id: '1001' }, reader);
  await step('anonymous call without a token -> 401', 'UNAUTHENTICATED', client.GetOrder, { id: '1001' }, undefined);
  await step('reader creates an order (lacks Orders.Write) -> 403', 'PERMISSION_DENIED', client.CreateOrder, { item: 'tea', quantity: 1 }, reader);
  await step('writer creates an order (Orders.Write) -> allowed', 'OK', client.CreateOrder, { item: 'tea', quantity: 1 }, writer);
  client.close();
  return results;
}
