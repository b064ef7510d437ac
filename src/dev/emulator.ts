import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEMO } from './demo.js';
import { createGraphEmulator } from './graph.js';
import { createKeyRing, type SigningKey } from './keys.js';
import { b2cIssuer } from '../authn/entra/urls.js';
import { createEmulatorRoutes, type EmulatorB2c, type EmulatorState } from './routes.js';
import { createTokenMinter, emulatedIssuer } from './tokens.js';
import type { EmulatorApi, EmulatorB2cOptions, EmulatorClient, EmulatorOptions, EntraEmulator, IssueTokenOptions } from './types.js';

export { DEMO, type DemoValues } from './demo.js';
export { generateEmulatorKeyPair } from './keys.js';
export { groupOverageClaims, type GraphEmulator } from './graph.js';
export type * from './types.js';

/**
 * A local, offline Microsoft Entra ID look-alike for dev mode and integration tests.
 *
 * It serves Entra's real paths on loopback HTTP — v1 and v2 OpenID metadata, both JWKS documents,
 * the v2 (and v1) token endpoint for the client-credentials grant — and mints Entra-shaped access
 * tokens directly for tests. What it mimics on purpose, because the server must cope with it:
 *
 * - v1 tokens are issued by `https://sts.windows.net/{tid}/` whatever the emulator's URL is (the
 *   v1 issuer never carries the authority host); v2 tokens by `{url}/{tid}/v2.0` (External ID
 *   tenants: `https://{tid}.ciamlogin.com/{tid}/v2.0`). With `b2c`, the first tenant is an Azure AD
 *   B2C tenant: metadata and keys per user flow, issuers `{url}/{tid}/v2.0/` or
 *   `{url}/tfp/{tid}/{flow}/v2.0/`, tokens without `tid` and with `tfp`.
 * - The token version follows the API's `accessTokenVersion`, not the endpoint the client used.
 * - JWKS keys carry no `alg`; v2 keys carry the `issuer` template `{url}/{tenantid}/v2.0` with the
 *   literal `{tenantid}` placeholder; v1 keys carry none.
 * - `kid` equals `x5t`, the base64url SHA-1 of a real (self-signed) DER certificate published in
 *   `x5c`, exactly as Entra does. v1 token headers carry `x5t` as well as `kid`.
 * - All keys are shared by every tenant, and several are published at once (two by default: the
 *   current signer and a standby), so a verifier that picks "the" key without matching `kid` (or
 *   `x5t` for x5t-only tokens) fails in tests as it would against Entra.
 *
 * Every instance holds its own state; nothing is module-level mutable.
 */

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function validateOptions(tenants: string[], apis: EmulatorApi[], clients: EmulatorClient[]): void {
  const problems: string[] = [];
  if (tenants.length === 0) problems.push('tenants: at least one tenant is required');
  for (const t of tenants) if (!GUID.test(t)) problems.push(`tenants: ${JSON.stringify(t)} is not a GUID`);
  if (new Set(tenants).size !== tenants.length) problems.push('tenants: duplicates');
  for (const a of apis) {
    if (!GUID.test(a.appId)) problems.push(`apis: appId ${JSON.stringify(a.appId)} is not a GUID`);
    if (!a.identifierUri) problems.push(`apis[${a.appId}]: identifierUri is empty`);
    if (a.accessTokenVersion !== 1 && a.accessTokenVersion !== 2) {
      problems.push(`apis[${a.appId}]: accessTokenVersion must be 1 or 2`);
    }
  }
  if (new Set(apis.map((a) => a.appId)).size !== apis.length) problems.push('apis: duplicate appId');
  for (const c of clients) {
    if (!GUID.test(c.clientId)) problems.push(`clients: clientId ${JSON.stringify(c.clientId)} is not a GUID`);
    if (!c.clientSecret) problems.push(`clients[${c.clientId}]: clientSecret is empty`);
    if (!tenants.includes(c.tenantId)) problems.push(`clients[${c.clientId}]: tenant ${c.tenantId} is not served`);
  }
  if (new Set(clients.map((c) => c.clientId)).size !== clients.length) problems.push('clients: duplicate clientId');
  if (problems.length > 0) throw new TypeError(`invalid emulator options:\n  ${problems.join('\n  ')}`);
}

/** The B2C options with their defaults, and the issuer its setting calls for. */
function resolveB2c(o: EmulatorB2cOptions, url: () => string): EmulatorB2c {
  const userFlows = o.userFlows ?? ['B2C_1_signupsignin'];
  const form = o.issuerForm ?? 'tenant';
  return {
    domain: (o.domain ?? 'entraauthzdemo.onmicrosoft.com').toLowerCase(),
    userFlows,
    issuer: (tenant, userFlow) => b2cIssuer(url(), tenant, userFlow, form),
  };
}

/** Starts an emulator on loopback (port 0 by default). Generates its keys before resolving. */
export async function startEntraEmulator(opts: EmulatorOptions = {}): Promise<EntraEmulator> {
  const now = opts.now ?? Date.now;
  const host = opts.host ?? '127.0.0.1';
  const tenantsCustomised = opts.tenants !== undefined;
  const tenants = (opts.tenants ?? [DEMO.tenantId]).map((t) => t.toLowerCase());
  const apis: EmulatorApi[] = (opts.apis ?? [DEMO.api]).map((a) => ({
    ...a,
    appId: a.appId.toLowerCase(),
    appRoles: [...a.appRoles],
    scopes: [...a.scopes],
  }));
  const clients: EmulatorClient[] = (
    opts.clients ??
    Object.values(DEMO.clients).map((c) => (tenantsCustomised ? { ...c, tenantId: tenants[0] ?? c.tenantId } : c))
  ).map((c) => ({
    ...c,
    clientId: c.clientId.toLowerCase(),
    tenantId: c.tenantId.toLowerCase(),
    roles: Object.fromEntries(Object.entries(c.roles).map(([k, v]) => [k.toLowerCase(), [...v]])),
  }));
  validateOptions(tenants, apis, clients);
  const initialKeys = opts.initialKeys ?? 2;
  if (!Number.isInteger(initialKeys) || initialKeys < 1) throw new TypeError('initialKeys must be a positive integer');

  const keys = await createKeyRing({ initialKeys, keyPairs: opts.keyPairs ?? [], now });
  const state: EmulatorState = { available: true, counts: { discovery: 0, jwks: 0, token: 0 } };
  let responseDelayMs = 0;
  const timers = new Set<NodeJS.Timeout>();
  let url = '';
  const tenantKind = opts.tenantKind ?? 'workforce';
  const b2c = opts.b2c === undefined ? undefined : resolveB2c(opts.b2c, () => url);
  const minter = createTokenMinter({
    tenants,
    apis,
    clients,
    keys,
    now,
    url: () => url,
    issuer: (tenant, version) => emulatedIssuer(url, tenantKind, tenant, version),
    ...(b2c ? { b2c } : {}),
  });
  const rotateKeys = async (retireOld: boolean): Promise<string> => (await keys.rotate(retireOld)).kid;

  const delay = (): Promise<void> =>
    responseDelayMs <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const t = setTimeout(() => {
            timers.delete(t);
            resolve();
          }, responseDelayMs);
          timers.add(t);
        });

  const graph = createGraphEmulator();
  const appsWithOwnKeys = new Set(apis.filter((a) => a.claimsMapping === true).map((a) => a.appId));
  const signerFor = async (api: EmulatorApi | undefined): Promise<SigningKey> =>
    api !== undefined && appsWithOwnKeys.has(api.appId) ? keys.appKey(api.appId) : keys.current();

  const server = createServer(
    createEmulatorRoutes({ tenants, clients, keys, minter, now, url: () => url, state, delay, rotateKeys, signerFor, appsWithOwnKeys, graph, b2c, onRequest: opts.onRequest }),
  );
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  url = opts.publicUrl?.replace(/\/+$/, '') ?? `http://${urlHost}:${addr.port}`;

  let closing: Promise<void> | undefined;

  return {
    get url() {
      return url;
    },
    tenants: Object.freeze([...tenants]),
    apis: Object.freeze(apis.map((a) => Object.freeze(a))),
    clients: Object.freeze(clients.map((c) => Object.freeze(c))),
    async issueToken(o: IssueTokenOptions = {}) {
      const known = o.kid !== undefined ? keys.get(o.kid) : undefined;
      if (known) return minter.mint(o, known, known.kid);
      const signer = await signerFor(o.audience !== undefined ? minter.findApi(o.audience) : apis[0]);
      return minter.mint(o, signer, o.kid ?? signer.kid);
    },
    async signWithUnpublishedKey(o: IssueTokenOptions = {}) {
      const k = await keys.unpublished(); // known (so `kid:` and publicKeyPem work) but never published
      return minter.mint(o, k, o.kid ?? k.kid);
    },
    publicKeyPem(kid?: string) {
      const k = kid === undefined ? keys.current() : keys.get(kid);
      if (!k) throw new Error(`unknown kid ${String(kid)}`);
      return k.spkiPem;
    },
    rotateKeys: (o: { retireOld?: boolean } = {}) => rotateKeys(o.retireOld ?? false),
    get currentKid() {
      return keys.current().kid;
    },
    get publishedKids() {
      return keys.publishedKids();
    },
    setAvailable(up: boolean) {
      state.available = up;
    },
    setResponseDelay(ms: number) {
      responseDelayMs = Math.max(0, ms);
    },
    fetchCount(kind) {
      return state.counts[kind];
    },
    resetCounts() {
      state.counts.discovery = state.counts.jwks = state.counts.token = 0;
    },
    graph,
    oidFor: minter.oidFor,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
