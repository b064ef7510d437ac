/**
 * `entra-authz explain`: runs one check through the real decision flow (the same decider the
 * server uses) and says why it came out as it did: the decision, every rule tried up to the one
 * that matched, the verified token, and each requirement met or failed.
 *
 * Offline diagnosis: `--jwks FILE` serves a local key set through the key store's injected fetch
 * (no key-store code of its own), and `--at TIME` evaluates at a given instant, so a token
 * captured yesterday can be diagnosed today.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createKeyStore } from '../authn/entra/keystore.js';
import { createTokenVerifier } from '../authn/entra/verifier.js';
import { entraIssuer, entraUrl, type EntraEndpoint } from '../authn/entra/urls.js';
import { loadConfigFile } from '../config/load.js';
import type { Config, EntraConfig } from '../config/schema.js';
import type { TokenIdentity } from '../core/identity.js';
import { grpcCodeName } from '../core/reason-table.js';
import { reasonInfo, type ReasonCode } from '../core/reasons.js';
import { normalizeCheckRequest, type RequestView } from '../core/request.js';
import { isRecord } from '../core/values.js';
import { extractToken } from '../authn/bearer.js';
import type { TokenVerifier } from '../core/verifier.js';
import { createDecider } from '../engine/decide.js';
import { compilePolicy } from '../policy/compile.js';
import { traceRules, type RequirementOutcome, type RuleTrace } from '../policy/evaluate.js';
import { envoyCheckRequest } from './check.js';

/** Everything `explain` prints, as data (`--json` prints exactly this). */
export interface ExplainReport {
  /** The instant the check was evaluated at (ISO 8601). */
  readonly at: string;
  readonly decision: {
    readonly kind: 'allow' | 'deny' | 'unavailable';
    readonly reason: ReasonCode;
    readonly httpStatus: number;
    readonly grpcStatus: string;
    readonly message: string;
    readonly detail: string;
    readonly rule: string | undefined;
    /** Present when dry-run turned a denial into this allow. */
    readonly dryRun: { readonly wouldDeny: ReasonCode; readonly httpStatus: number; readonly message: string; readonly detail: string } | undefined;
  };
  readonly request:
    | {
        readonly method: string;
        readonly host: string;
        readonly path: string;
        readonly contextExtensions: Readonly<Record<string, string>>;
        readonly peerPrincipal: string;
      }
    | undefined;
  /** The TLS peer as resolved by the mTLS module, when the check needed it. */
  readonly peer: { readonly source: string; readonly principal: string; readonly spiffeId: string | undefined; readonly dnsSans: readonly string[] } | undefined;
  /** Rules tried in order, up to and including the one that matched. */
  readonly rules: readonly RuleTrace[];
  readonly rule:
    | {
        readonly name: string;
        readonly index: number;
        readonly description: string | undefined;
        readonly allowAnonymous: boolean;
        /** `required`, `optional` (a peerOnly requirement: a token that is sent is still verified) or `none`. */
        readonly token: 'required' | 'optional' | 'none';
        readonly dryRun: boolean;
      }
    | undefined;
  /** The verified token, when one was verified. */
  readonly token: ExplainToken | undefined;
  /**
   * Claims read WITHOUT verification, only when verification failed — to say why (expiry,
   * tenant, audience). Never trusted for the decision.
   */
  readonly unverifiedToken: Readonly<Record<string, unknown>> | undefined;
  readonly requirements: readonly RequirementOutcome[];
  readonly notes: readonly string[];
}

export interface ExplainToken {
  readonly version: string;
  readonly type: string;
  readonly tenant: string;
  readonly appId: string;
  readonly oid: string;
  readonly audience: string;
  readonly issuer: string;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
  readonly groups: readonly string[];
  readonly groupsOverage: boolean;
  readonly directoryRoles: readonly string[];
  /** `appidacr`/`azpacr`. */
  readonly clientAuthentication: string | undefined;
  readonly authMethods: readonly string[];
  readonly authContexts: readonly string[];
  readonly claimsChallengeCapable: boolean;
  readonly expiresAt: string;
  readonly uti: string | undefined;
  readonly certificateBound: boolean;
}

export interface ExplainInput {
  readonly config: Config;
  /** A CheckRequest as Envoy sends it (snake_case, as decoded by the server). */
  readonly request: unknown;
  readonly verifier: TokenVerifier;
  /** The evaluation instant, ms since the epoch. */
  readonly at: number;
}

function tokenOf(id: TokenIdentity): ExplainToken {
  return {
    version: id.version,
    type: id.type,
    tenant: id.tid,
    appId: id.appId,
    oid: id.oid,
    audience: id.audience,
    issuer: id.issuer,
    roles: id.roles,
    scopes: id.scopes,
    groups: id.groups,
    groupsOverage: id.groupsOverage,
    directoryRoles: id.directoryRoles,
    clientAuthentication: id.appAuth,
    authMethods: id.authMethods,
    authContexts: id.authContexts,
    claimsChallengeCapable: id.claimsChallengeCapable,
    expiresAt: new Date(id.expiresAt * 1000).toISOString(),
    uti: id.uti,
    certificateBound: id.boundCertificateThumbprint !== undefined,
  };
}

const PEEK_CLAIMS = ['iss', 'aud', 'tid', 'ver', 'appid', 'azp', 'idtyp', 'oid', 'roles', 'scp', 'iat', 'nbf', 'exp', 'uti'];

/** `appidacr`/`azpacr` values as explain names them. */
const CLIENT_AUTH: Readonly<Record<string, string>> = { '0': 'public client (0)', '1': 'client secret (1)', '2': 'certificate or assertion (2)' };

/** Selected claims and header fields of a token, decoded without any verification. */
export function peekToken(token: string): Record<string, unknown> | undefined {
  const [h, p] = token.split('.');
  if (h === undefined || p === undefined) return undefined;
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of ['alg', 'kid', 'x5t']) if (header[k] !== undefined) out[`header.${k}`] = header[k];
    for (const k of PEEK_CLAIMS) {
      const v = payload[k];
      if (v === undefined) continue;
      out[k] = (k === 'exp' || k === 'nbf' || k === 'iat') && typeof v === 'number' ? `${v} (${new Date(v * 1000).toISOString()})` : v;
    }
    return out;
  } catch {
    return undefined;
  }
}

function credentialOf(view: RequestView, header: string): string | undefined {
  const credential = extractToken(view, header);
  return credential.kind === 'token' ? credential.token : undefined;
}

/** Runs the decision flow on one request and collects the explanation. Never throws for a bad request. */
export async function explainRequest(input: ExplainInput): Promise<ExplainReport> {
  const { config, request, verifier, at } = input;
  const policy = compilePolicy(config);
  const decider = createDecider({ config, verifier, newId: () => 'explain', policy });
  const normalized = normalizeCheckRequest(request, decider.limits);
  const outcome = normalized.ok ? await decider.decide(normalized.request) : decider.unreadable(normalized.detail);
  const d = outcome.decision;
  const info = reasonInfo(d.reason);
  const notes: string[] = [];

  let rules: readonly RuleTrace[] = [];
  let rule: ExplainReport['rule'];
  const view = outcome.request;
  if (view) {
    const traced = traceRules(policy, view);
    rules = traced.trace;
    if (traced.selection.kind === 'rule') {
      const r = traced.selection.rule;
      rule = { name: r.name, index: r.index, description: r.description, allowAnonymous: r.anonymous, token: r.token, dryRun: r.dryRun };
      if (r.anonymous) notes.push('the rule allows anonymous access: no credential was read');
      else if (r.token === 'optional') notes.push('the peer may authenticate alone on this rule (peerOnly); a token that is sent is still verified');
    } else if (traced.selection.kind === 'path_not_canonical') {
      notes.push(`the path is not canonical (it has ${view.pathProblem}): refused before any rule; let Envoy normalize it (docs/envoy.md)`);
    } else {
      notes.push('no rule matched: default deny');
    }
  } else {
    notes.push('the CheckRequest could not be read: no rule was tried');
  }

  let unverifiedToken: ExplainReport['unverifiedToken'];
  const raw = view !== undefined && rule !== undefined && rule.token !== 'none' && d.identity === undefined ? credentialOf(view, config.entra.tokenHeader) : undefined;
  if (raw !== undefined) {
    unverifiedToken = peekToken(raw);
    if (outcome.outcomes.length === 0) notes.push('requirements were not checked: the token did not pass verification');
  }

  const reason = d.dryRun?.wouldDeny;
  return {
    at: new Date(at).toISOString(),
    decision: {
      kind: d.kind,
      reason: d.reason,
      httpStatus: info.httpStatus,
      grpcStatus: grpcCodeName(info.grpcCode),
      message: info.message,
      detail: d.detail,
      rule: d.rule,
      dryRun:
        d.dryRun && reason
          ? { wouldDeny: reason, httpStatus: reasonInfo(reason).httpStatus, message: reasonInfo(reason).message, detail: d.dryRun.detail }
          : undefined,
    },
    request: view
      ? {
          method: view.method,
          host: view.host,
          path: view.path,
          contextExtensions: { ...view.contextExtensions },
          peerPrincipal: view.source.principal,
        }
      : undefined,
    peer: outcome.peer ? { source: outcome.peer.source, principal: outcome.peer.principal, spiffeId: outcome.peer.spiffeId, dnsSans: outcome.peer.dnsSans } : undefined,
    rules,
    rule,
    token: d.identity ? tokenOf(d.identity) : undefined,
    unverifiedToken,
    requirements: outcome.outcomes,
    notes,
  };
}

const mark = (met: boolean): string => (met ? '[met]   ' : '[FAILED]');
const listOr = (values: readonly string[], none = '(none)'): string => (values.length > 0 ? values.join(', ') : none);

/** The report for a person. */
export function formatExplain(r: ExplainReport): string {
  const lines: string[] = [];
  const d = r.decision;
  if (d.dryRun) {
    lines.push(`Decision   ALLOW (dry-run) — would deny: ${d.dryRun.wouldDeny} (HTTP ${d.dryRun.httpStatus}: ${d.dryRun.message})`);
    lines.push(`Detail     ${d.dryRun.detail}`);
  } else {
    const status = d.kind === 'unavailable' ? 'RPC error UNAVAILABLE (Envoy failure_mode_allow / status_on_error apply)' : `HTTP ${d.httpStatus}, gRPC ${d.grpcStatus}`;
    lines.push(`Decision   ${d.kind.toUpperCase()} ${d.reason} (${status})`);
    if (d.kind !== 'allow') lines.push(`           ${d.message}`);
    lines.push(`Detail     ${d.detail}`);
  }
  lines.push(`Evaluated  ${r.at}`);
  if (r.request) {
    const q = r.request;
    lines.push(`Request    ${q.method} ${q.host}${q.path}`);
    const ext = Object.entries(q.contextExtensions);
    if (ext.length > 0) lines.push(`           context extensions: ${ext.map(([k, v]) => `${k}=${v}`).join(', ')}`);
    if (q.peerPrincipal !== '') lines.push(`           peer: ${q.peerPrincipal}`);
  }

  lines.push('', 'Rules (file order, first match decides)');
  if (r.rules.length === 0) lines.push('  (none tried)');
  for (const t of r.rules) {
    lines.push(t.matched ? `  [match]  rules[${t.index}] ${t.rule}` : `  [skip]   rules[${t.index}] ${t.rule}: ${t.mismatch ?? ''}`);
  }
  if (r.rule) {
    const flags = [r.rule.allowAnonymous ? 'anonymous' : '', r.rule.token === 'optional' ? 'peer may authenticate alone' : '', r.rule.dryRun ? 'dry-run' : ''].filter(
      (f) => f !== '',
    );
    lines.push(`  Matched: ${r.rule.name}${flags.length > 0 ? ` (${flags.join(', ')})` : ''}${r.rule.description ? ` — ${r.rule.description}` : ''}`);
  }

  if (r.peer) {
    lines.push('', `Peer (from ${r.peer.source})`);
    lines.push(`  ${r.peer.spiffeId ?? r.peer.principal}${r.peer.dnsSans.length > 0 ? `, DNS ${r.peer.dnsSans.join(', ')}` : ''}`);
  }

  if (r.token) {
    const t = r.token;
    lines.push('', 'Token (verified)');
    lines.push(`  v${t.version} ${t.type} token, tenant ${t.tenant}, app ${t.appId || '(none)'}, oid ${t.oid}`);
    lines.push(`  audience ${t.audience}`);
    lines.push(`  roles    ${listOr(t.roles)}`);
    lines.push(`  scopes   ${listOr(t.scopes)}`);
    lines.push(`  groups   ${t.groupsOverage ? 'not in the token (group overage)' : listOr(t.groups)}`);
    if (t.directoryRoles.length > 0) lines.push(`  wids     ${listOr(t.directoryRoles)}`);
    if (t.clientAuthentication !== undefined) lines.push(`  client authentication ${CLIENT_AUTH[t.clientAuthentication] ?? t.clientAuthentication}`);
    if (t.type === 'user') {
      lines.push(`  amr      ${listOr(t.authMethods)}`);
      lines.push(`  acrs     ${listOr(t.authContexts)}${t.claimsChallengeCapable ? ' (client handles claims challenges: cp1)' : ''}`);
    }
    lines.push(`  expires  ${t.expiresAt}${t.certificateBound ? ', certificate-bound' : ''}`);
  } else if (r.unverifiedToken) {
    lines.push('', 'Token (NOT verified — claims shown only to diagnose the failure)');
    for (const [k, v] of Object.entries(r.unverifiedToken)) lines.push(`  ${k.padEnd(11)}${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }

  if (r.requirements.length > 0) {
    lines.push('', `Requirements${r.rule ? ` of ${r.rule.name}` : ''}`);
    for (const o of r.requirements) lines.push(`  ${mark(o.met)} ${o.requirement}: ${o.detail}`);
  }
  if (r.notes.length > 0) {
    lines.push('', 'Notes');
    for (const n of r.notes) lines.push(`  - ${n}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A fetch that answers Entra's discovery endpoints for the configured tenants from a local JWKS:
 * v2 metadata (issuer `{authority}/{tid}/v2.0`), v1 metadata (issuer `https://sts.windows.net/{tid}/`,
 * or the sovereign cloud's), and the JWKS for every jwks_uri. Anything else is a 404.
 */
export function offlineFetch(entra: EntraConfig, jwks: unknown): typeof globalThis.fetch {
  const json = (body: unknown): Response => new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
  const routes = new Map<string, () => Response>();
  for (const tid of entra.tenants) {
    for (const version of ['2.0', '1.0'] as const) {
      const url = (endpoint: EntraEndpoint): string => entraUrl(entra.authority, tid, endpoint, version);
      routes.set(url('metadata'), () =>
        json({ issuer: entraIssuer(entra.authority, tid, version), jwks_uri: url('jwks'), token_endpoint: url('token') }),
      );
      routes.set(url('jwks'), () => json(jwks));
    }
  }
  return (async (input: string | URL | Request) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const route = routes.get(url);
    return route ? route() : new Response('not found', { status: 404 });
  }) as typeof globalThis.fetch;
}

/** `--at`: ISO 8601 (`2025-03-01T10:00:00Z`) or seconds since the epoch. */
export function parseInstant(value: string): number {
  if (/^\d{9,11}(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new UsageError(`--at: expected an ISO 8601 time or epoch seconds, got ${JSON.stringify(value)}`);
  return ms;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

// Map fields of the CheckRequest whose keys are data (header names, extension names): kept as is.
const OPAQUE_FIELDS = new Set(['headers', 'context_extensions', 'labels', 'metadata_context', 'route_metadata_context', 'filter_metadata', 'typed_filter_metadata']);
const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * A CheckRequest in either JSON form — proto3 JSON (`contextExtensions`, `socketAddress`) as
 * Envoy's JSON tools print it, or the snake_case field names of the proto — in the snake_case
 * form the server decodes. `header_map` `raw_value`s (base64 in JSON) become bytes.
 */
export function normalizeCheckRequestJson(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => normalizeCheckRequestJson(v, key));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const name = snake(k);
    // `header_map.headers` is a list of {key, value} entries, not a map: converted like the rest.
    if (OPAQUE_FIELDS.has(name) && !Array.isArray(v)) out[name] = v;
    else if (name === 'raw_value' && typeof v === 'string') out[name] = Buffer.from(v, 'base64');
    else out[name] = normalizeCheckRequestJson(v, name);
  }
  // A bare AttributeContext (what `attributes` holds) is accepted too.
  if (key === '' && out['attributes'] === undefined && out['request'] !== undefined) return { attributes: out };
  return out;
}

/** Puts `<scheme> <token>` into the request's token header (replacing one already there). */
function withToken(request: unknown, header: string, token: string): unknown {
  const root = request as { attributes?: { request?: { http?: Record<string, unknown> } } };
  const http = root.attributes?.request?.http;
  if (!http) return request;
  const headers = isRecord(http['headers']) ? http['headers'] : {};
  http['headers'] = { ...headers, [header]: `Bearer ${token}` };
  const map = http['header_map'] as { headers?: { key?: string }[] } | undefined;
  if (map?.headers) map.headers = map.headers.filter((h) => h.key?.toLowerCase() !== header);
  return request;
}

function pairs(list: string[] | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const i = item.indexOf('=');
    if (i <= 0) throw new UsageError(`${what}: expected key=value, got ${JSON.stringify(item)}`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

export interface ExplainIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Reads a file; `-` means standard input. */
  readonly readText: (path: string) => Promise<string>;
  /** Network fetch used without `--jwks`. */
  readonly fetch: typeof globalThis.fetch;
  /** Wall clock used without `--at`. */
  readonly now: () => number;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const defaultIo: ExplainIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  readText: (p) => (p === '-' ? readStdin() : readFile(p, 'utf8')),
  fetch: (...args) => globalThis.fetch(...args),
  now: Date.now,
};

export const EXPLAIN_USAGE = `entra-authz explain --config FILE [input] [options]

Input (one of):
  --token JWT | --token-file FILE|-     a token; the request is built from the flags below
  --request FILE|-                      a CheckRequest as Envoy sends it (JSON; --token replaces its token)
Request flags (with --token, or alone for an anonymous request):
  --method M (GET)  --path P (/)  --host H (api.example.com)
  --context k=v ...  --header k=v ...  --principal SPIFFE-ID-or-name
Options:
  --at TIME        evaluate at this instant (ISO 8601 or epoch seconds); default now
  --jwks FILE      verify with this local JWK set instead of fetching from Entra (offline)
  --json           print the report as JSON
Exit status: 0 allowed (also dry-run allows), 1 denied or unavailable, 2 usage error.

Example:
  entra-authz explain --config entra-authz.yaml --token "$TOKEN" --path /orders --context policy=orders-write
`;

/** `entra-authz explain`. */
export async function runExplain(args: string[], io: ExplainIo = defaultIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        token: { type: 'string' },
        'token-file': { type: 'string' },
        request: { type: 'string' },
        method: { type: 'string' },
        path: { type: 'string' },
        host: { type: 'string' },
        context: { type: 'string', multiple: true },
        header: { type: 'string', multiple: true },
        principal: { type: 'string' },
        at: { type: 'string' },
        jwks: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${EXPLAIN_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(EXPLAIN_USAGE);
    return 0;
  }
  try {
    if (!values.config) throw new UsageError('explain needs --config FILE');
    if (values.token !== undefined && values['token-file'] !== undefined) throw new UsageError('give --token or --token-file, not both');
    if (values.request !== undefined && (values.method ?? values.path ?? values.host ?? values.principal ?? values.context ?? values.header) !== undefined) {
      throw new UsageError('--request takes the method, path, host, headers and context from the file; drop the request flags');
    }
    const config = await loadConfigFile(values.config);
    const at = values.at !== undefined ? parseInstant(values.at) : io.now();
    let token = values.token;
    if (values['token-file'] !== undefined) token = (await io.readText(values['token-file'])).trim();

    let request: unknown;
    if (values.request !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(await io.readText(values.request));
      } catch (err) {
        throw new UsageError(`--request: ${(err as Error).message}`);
      }
      request = normalizeCheckRequestJson(parsed);
      if (token !== undefined) request = withToken(request, config.entra.tokenHeader, token);
    } else {
      const headers = pairs(values.header, '--header');
      if (token !== undefined) headers[config.entra.tokenHeader] = `Bearer ${token}`;
      request = envoyCheckRequest({
        method: values.method ?? 'GET',
        path: values.path ?? '/',
        host: values.host ?? 'api.example.com',
        headers,
        contextExtensions: pairs(values.context, '--context'),
        ...(values.principal !== undefined ? { sourcePrincipal: values.principal } : {}),
      });
    }

    let jwks: unknown;
    if (values.jwks !== undefined) {
      try {
        jwks = JSON.parse(await io.readText(values.jwks));
      } catch (err) {
        throw new UsageError(`--jwks: ${(err as Error).message}`);
      }
      if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as { keys?: unknown }).keys)) {
        throw new UsageError('--jwks: expected a JWK set ({"keys": [...]})');
      }
    }

    const keys = createKeyStore({
      config: config.entra,
      fetch: jwks !== undefined ? offlineFetch(config.entra, jwks) : io.fetch,
      now: () => at,
      // Timers of a one-shot run must not keep the process alive or fire later.
      schedule: () => () => {},
    });
    try {
      // Keys are needed only when a token will be verified; loading them costs a fetch per tenant.
      const view = normalizeCheckRequest(request);
      if (view.ok && credentialOf(view.request, config.entra.tokenHeader) !== undefined) await keys.start();
      const verifier = createTokenVerifier({ config: config.entra, keys, now: () => at });
      const report = await explainRequest({ config, request, verifier, at });
      io.out(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatExplain(report));
      return report.decision.kind === 'allow' ? 0 : 1;
    } finally {
      keys.stop();
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n\n${EXPLAIN_USAGE}`);
      return 2;
    }
    throw err;
  }
}
