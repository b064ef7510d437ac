import { createRequire } from 'node:module';
import { credentials, loadPackageDefinition, makeGenericClientConstructor, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { envoyCheckRequest, type CheckRequestOptions } from '../../src/cli/check.js';
import { DEMO, startEntraEmulator, type EmulatorOptions, type EntraEmulator } from '../../src/dev/emulator.js';
import { startApp, type AppDeps, type RunningApp } from '../../src/runtime/app.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createAuthorizationClient, loadAuthorizationService, type AuthorizationClient } from '../../src/server/protos.js';
import { sharedKeyPairs } from '../fixtures/keys.js';

/** A controllable clock shared by the server and the emulator. */
export interface FakeClock {
  now(): number;
  advance(ms: number): void;
}

export function fakeClock(start = Date.now()): FakeClock {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

export type CheckResult =
  | { kind: 'response'; response: CheckResponse }
  | { kind: 'error'; code: number; details: string };

export interface CheckResponse {
  status?: { code?: number; message?: string };
  ok_response?: { headers?: HeaderOption[]; headers_to_remove?: string[] };
  denied_response?: { status?: { code?: string | number }; headers?: HeaderOption[]; body?: string };
  dynamic_metadata?: { fields?: Record<string, { stringValue?: string; listValue?: { values?: { stringValue?: string }[] } }> };
}
export interface HeaderOption {
  header?: { key?: string; value?: string };
  append_action?: string;
}

export function headerMap(list: HeaderOption[] | undefined): Record<string, string> {
  return Object.fromEntries((list ?? []).map((h) => [h.header?.key ?? '', h.header?.value ?? '']));
}

export interface Harness {
  readonly emulator: EntraEmulator;
  readonly app: RunningApp;
  readonly config: Config;
  readonly clock: FakeClock;
  readonly client: AuthorizationClient;
  /** Sends a raw CheckRequest object. */
  sendRaw(request: unknown): Promise<CheckResult>;
  /** Sends bytes as the Check message, unencoded: whatever a broken or hostile client might send. */
  sendBytes(bytes: Buffer): Promise<CheckResult>;
  /** Sends an Envoy-shaped CheckRequest. */
  check(opts?: CheckRequestOptions): Promise<CheckResult>;
  health(service?: string): Promise<string>;
  /** Resolves once the server reports SERVING (keys loaded). */
  waitServing(): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Merged into the `entra` section; a function gets the emulator's URL (e.g. for `graph.endpoint`). */
  readonly entra?: Record<string, unknown> | ((emulatorUrl: string) => Record<string, unknown>);
  readonly rules?: unknown[];
  readonly response?: Record<string, unknown>;
  readonly emulatorDown?: boolean;
  /** Options of the emulator (its clock is always the harness's). */
  readonly emulator?: EmulatorOptions;
  readonly deps?: Partial<AppDeps>;
  /** Merged into the `server` section (e.g. `tls`). */
  readonly server?: Record<string, unknown>;
  /** The top-level `peer` section (CA bundle, XFCC trust). */
  readonly peer?: Record<string, unknown>;
  /** Shared clock of server and emulator; default `fakeClock()`. */
  readonly clock?: FakeClock;
  /** Credentials of the harness's Check and health clients; default insecure. */
  readonly clientCredentials?: ChannelCredentials;
  /** Channel options of those clients (e.g. `grpc.ssl_target_name_override`). */
  readonly channelOptions?: ChannelOptions;
}

export function harnessConfig(emulatorUrl: string, opts: HarnessOptions = {}): Config {
  return validateConfig({
    server: { listen: '127.0.0.1:0', shutdownGraceSeconds: 2, ...opts.server },
    ...(opts.peer ? { peer: opts.peer } : {}),
    entra: {
      authority: emulatorUrl,
      tenants: [DEMO.tenantId],
      audiences: [DEMO.api.identifierUri, DEMO.api.appId],
      ...(typeof opts.entra === 'function' ? opts.entra(emulatorUrl) : opts.entra),
    },
    rules: opts.rules ?? [
      { name: 'orders-write', match: { contextExtensions: { policy: 'orders-write' } }, require: { roles: { anyOf: ['Orders.Write'] } } },
      { name: 'orders-read', require: { roles: { anyOf: ['Orders.Read', 'Orders.Write'] } } },
    ],
    ...(opts.response ? { response: opts.response } : {}),
  });
}

type HealthClient = { Check(req: unknown, cb: (err: ServiceError | null, res?: { status?: string }) => void): void; close(): void };

function healthClient(address: string, creds: ChannelCredentials = credentials.createInsecure(), options?: ChannelOptions): HealthClient {
  const require = createRequire(import.meta.url);
  const proto = require.resolve('grpc-health-check/proto/health/v1/health.proto');
  const def = loadSync(proto, { keepCase: true, enums: String });
  const pkg = loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: new (address: string, creds: ChannelCredentials, options?: ChannelOptions) => HealthClient } } };
  };
  return new pkg.grpc.health.v1.Health(address, creds, options);
}

let AuthorizationClientCtor: ReturnType<typeof makeGenericClientConstructor> | undefined;

/** An Authorization client with channel options (createAuthorizationClient takes none). */
export function authorizationClient(address: string, creds: ChannelCredentials, options: ChannelOptions = {}): AuthorizationClient {
  AuthorizationClientCtor ??= makeGenericClientConstructor(loadAuthorizationService(), 'Authorization');
  return new AuthorizationClientCtor(address, creds, options) as unknown as AuthorizationClient;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const clock = opts.clock ?? fakeClock();
  const emulator = await startEntraEmulator({ keyPairs: sharedKeyPairs(), ...opts.emulator, now: clock.now });
  if (opts.emulatorDown) emulator.setAvailable(false);
  const config = harnessConfig(emulator.url, opts);
  const app = await startApp(config, { log: silentLogger(), now: clock.now, ...opts.deps });
  const creds = opts.clientCredentials ?? credentials.createInsecure();
  const client = opts.channelOptions ? authorizationClient(app.address, creds, opts.channelOptions) : createAuthorizationClient(app.address, creds);
  const health = healthClient(app.address, creds, opts.channelOptions);

  const sendRaw = (request: unknown): Promise<CheckResult> =>
    new Promise((resolve) => {
      client.Check(request, (err, res) => {
        if (err) resolve({ kind: 'error', code: err.code, details: err.details });
        else resolve({ kind: 'response', response: (res ?? {}) as CheckResponse });
      });
    });

  const checkMethod = loadAuthorizationService()['Check']!;
  const sendBytes = (bytes: Buffer): Promise<CheckResult> =>
    new Promise((resolve) => {
      client.makeUnaryRequest(
        checkMethod.path,
        (b: Buffer) => b,
        (b: Buffer) => checkMethod.responseDeserialize(b) as CheckResponse,
        bytes,
        (err, response) => resolve(err ? { kind: 'error', code: err.code, details: err.details } : { kind: 'response', response: response ?? {} }),
      );
    });

  const healthStatus = (service = ''): Promise<string> =>
    new Promise((resolve, reject) => {
      health.Check({ service }, (err, res) => (err ? reject(err) : resolve(res?.status ?? 'UNKNOWN')));
    });

  return {
    emulator,
    app,
    config,
    clock,
    client,
    sendRaw,
    sendBytes,
    check: (o) => sendRaw(envoyCheckRequest(o)),
    health: healthStatus,
    async waitServing() {
      const deadline = Date.now() + 10_000;
      while ((await healthStatus()) !== 'SERVING') {
        if (Date.now() > deadline) throw new Error('server never became SERVING');
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async close() {
      client.close();
      health.close();
      await app.close(500);
      await emulator.close();
    },
  };
}

/** Asserts a deny and returns its reason, HTTP status and headers. */
export function denial(result: CheckResult): { reason: string; grpcCode: number; httpStatus: unknown; headers: Record<string, string>; body: Record<string, unknown> } {
  if (result.kind !== 'response') throw new Error(`expected a deny, got RPC error ${result.code} ${result.details}`);
  const r = result.response;
  if (!r.denied_response) throw new Error(`expected a deny, got ${JSON.stringify(r)}`);
  return {
    reason: r.status?.message ?? '',
    grpcCode: r.status?.code ?? 0,
    httpStatus: r.denied_response.status?.code,
    headers: headerMap(r.denied_response.headers),
    body: JSON.parse(r.denied_response.body ?? '{}') as Record<string, unknown>,
  };
}

/** Asserts an allow and returns the upstream header changes and metadata. */
export function allowance(result: CheckResult): { headers: Record<string, string>; appendActions: string[]; remove: string[]; metadata: Record<string, unknown> } {
  if (result.kind !== 'response') throw new Error(`expected an allow, got RPC error ${result.code} ${result.details}`);
  const r = result.response;
  if (!r.ok_response || r.status?.code) throw new Error(`expected an allow, got ${JSON.stringify(r)}`);
  const fields = r.dynamic_metadata?.fields ?? {};
  return {
    headers: headerMap(r.ok_response.headers),
    appendActions: (r.ok_response.headers ?? []).map((h) => h.append_action ?? ''),
    remove: r.ok_response.headers_to_remove ?? [],
    metadata: Object.fromEntries(
      Object.entries(fields).map(([k, v]) => [k, v.stringValue ?? v.listValue?.values?.map((x) => x.stringValue) ?? null]),
    ),
  };
}
