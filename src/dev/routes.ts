import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { b2cUrl, entraUrl, matchB2cPath, matchEntraPath, tenantAuthority, TENANT_ID_TEMPLATE, type EntraEndpoint, type TokenVersion } from '../authn/entra/urls.js';
import type { GraphEmulator } from './graph.js';
import type { KeyRing, SigningKey } from './keys.js';
import { TOKEN_LIFETIME_SECONDS, type TokenMinter } from './tokens.js';
import type { EmulatorApi, EmulatorClient, EmulatorFetchKind, EmulatorRequestInfo } from './types.js';

/**
 * The emulator's HTTP side: Entra's OpenID metadata (v1, v2), JWKS and token endpoints with
 * Entra's error shapes, plus a key-rotation control. Everything it serves comes from the key ring
 * and the token minter; the switches (unavailable, response delay) and counters live in `state`.
 */

/** Entra's multi-tenant aliases: metadata and keys are served, with issuer templates. */
const TENANT_ALIASES = new Set(['common', 'organizations']);
const MAX_BODY_BYTES = 64 * 1024;
const MAX_DRAIN_BYTES = 16 * MAX_BODY_BYTES;
/** The endpoints the emulator serves, by the kind it counts them under (no authorize page). */
const ROUTE_KINDS: Partial<Record<EntraEndpoint, EmulatorFetchKind>> = { metadata: 'discovery', jwks: 'jwks', token: 'token' };

/** Switches and counters the emulator's controls change while it runs. */
export interface EmulatorState {
  available: boolean;
  readonly counts: Record<EmulatorFetchKind, number>;
}

/** An Azure AD B2C tenant (the first served tenant): its domain, user flows and issuer setting. */
export interface EmulatorB2c {
  readonly domain: string;
  /** As B2C spells them in `tfp` issuers; paths name them in any letter case. */
  readonly userFlows: readonly string[];
  issuer(tenant: string, userFlow: string): string;
}

export interface EmulatorRoutesDeps {
  readonly tenants: readonly string[];
  readonly clients: readonly EmulatorClient[];
  readonly keys: KeyRing;
  readonly minter: TokenMinter;
  readonly now: () => number;
  readonly url: () => string;
  readonly state: EmulatorState;
  /** Waits the configured response delay (fetch-timeout tests). */
  delay(): Promise<void>;
  rotateKeys(retireOld: boolean): Promise<string>;
  /** The key that signs tokens for an API: its own under claims mapping, else the current one. */
  signerFor(api: EmulatorApi | undefined): Promise<SigningKey>;
  /** Apps with claims mapping, whose keys the JWKS serves for `?appid=`. */
  readonly appsWithOwnKeys: ReadonlySet<string>;
  /** The Microsoft Graph slice (`/v1.0/…`). */
  readonly graph: GraphEmulator;
  readonly b2c?: EmulatorB2c | undefined;
  readonly onRequest?: ((info: EmulatorRequestInfo) => void) | undefined;
}

class HttpError {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {}
}

function entraTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function createEmulatorRoutes(deps: EmulatorRoutesDeps): RequestListener {
  const { tenants, clients, keys, minter, now, url, state } = deps;

  const entraError = (
    status: number,
    error: string,
    code: number,
    description: string,
    headers: Record<string, string> = {},
  ): HttpError => {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = entraTimestamp(now());
    return new HttpError(
      status,
      {
        error,
        error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
        error_codes: [code],
        timestamp,
        trace_id: traceId,
        correlation_id: correlationId,
        error_uri: `${url()}/error?code=${code}`,
      },
      headers,
    );
  };

  const unknownTenant = (tenant: string, error = 'invalid_tenant'): HttpError =>
    entraError(
      400,
      error,
      90002,
      `Tenant '${tenant.slice(0, 100)}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
    );

  /** Resolves the tenant path segment: a served GUID, an alias (metadata/keys only), or throws 400. */
  function resolveTenant(segment: string, allowAlias: boolean): { path: string; issuerTid: string } {
    const t = segment.toLowerCase();
    if (tenants.includes(t)) return { path: t, issuerTid: t };
    if (allowAlias && TENANT_ALIASES.has(t)) return { path: t, issuerTid: TENANT_ID_TEMPLATE };
    throw unknownTenant(segment);
  }

  const claimsSupported = [
    'sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host',
    'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash',
    'c_hash', 'email',
  ];
  const cloudFields = (isAlias: boolean) => ({
    tenant_region_scope: isAlias ? null : 'WW',
    cloud_instance_name: 'microsoftonline.com',
    cloud_graph_host_name: 'graph.windows.net',
    msgraph_host: 'graph.microsoft.com',
    rbac_url: 'https://pas.windows.net',
  });

  /** `?appid=…` as Entra carries it from the metadata URL into `jwks_uri`. */
  const appIdQuery = (appId: string | null): string => (appId === null ? '' : `?appid=${encodeURIComponent(appId)}`);

  function discoveryV2(t: { path: string; issuerTid: string }, appId: string | null): Record<string, unknown> {
    const base = tenantAuthority(url(), t.path);
    return {
      token_endpoint: entraUrl(url(), t.path, 'token', '2.0'),
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: entraUrl(url(), t.path, 'jwks', '2.0') + appIdQuery(appId),
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: minter.issuer(t.issuerTid, '2.0'),
      request_uri_parameter_supported: false,
      userinfo_endpoint: 'https://graph.microsoft.com/oidc/userinfo',
      authorization_endpoint: entraUrl(url(), t.path, 'authorize', '2.0'),
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: claimsSupported,
      kerberos_endpoint: `${base}/kerberos`,
      ...cloudFields(t.issuerTid !== t.path),
    };
  }

  function discoveryV1(t: { path: string; issuerTid: string }, appId: string | null): Record<string, unknown> {
    const base = tenantAuthority(url(), t.path);
    return {
      token_endpoint: entraUrl(url(), t.path, 'token', '1.0'),
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: entraUrl(url(), t.path, 'jwks', '1.0') + appIdQuery(appId),
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'token id_token', 'token'],
      scopes_supported: ['openid'],
      // The v1 issuer never names the authority host: real Entra and the emulator alike.
      issuer: minter.issuer(t.issuerTid, '1.0'),
      microsoft_multi_refresh_token: true,
      authorization_endpoint: entraUrl(url(), t.path, 'authorize', '1.0'),
      device_authorization_endpoint: `${base}/oauth2/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/logout`,
      claims_supported: claimsSupported,
      check_session_iframe: `${base}/oauth2/checksession`,
      userinfo_endpoint: `${base}/openid/userinfo`,
      kerberos_endpoint: `${base}/kerberos`,
      ...cloudFields(t.issuerTid !== t.path),
    };
  }


  /**
   * Reads a body of at most MAX_BODY_BYTES. A larger one is drained and discarded (so the client
   * can finish sending and actually read the 413), up to a hard limit beyond which the connection
   * is simply dropped.
   */
  function readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const settle = (fn: () => void) => {
        if (!settled) {
          settled = true;
          fn();
        }
      };
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_DRAIN_BYTES) {
          req.destroy();
          settle(() => reject(new Error('request body far too large')));
        } else if (size <= MAX_BODY_BYTES) {
          chunks.push(chunk);
        }
      });
      req.on('end', () =>
        settle(() =>
          size > MAX_BODY_BYTES
            ? reject(entraError(413, 'invalid_request', 90015, `The request body exceeds ${MAX_BODY_BYTES} bytes.`))
            : resolve(Buffer.concat(chunks)),
        ),
      );
      req.on('error', (err) => settle(() => reject(err)));
      req.on('close', () => settle(() => reject(new Error('request closed before its body was read'))));
    });
  }

  /** Client authentication: `client_secret_post` or `client_secret_basic`, never both (RFC 6749 §2.3). */
  function authenticateClient(req: IncomingMessage, form: URLSearchParams, tenant: string): EmulatorClient {
    let clientId = form.get('client_id') ?? undefined;
    let secret = form.get('client_secret') ?? undefined;
    const authz = req.headers.authorization;
    let basic = false;
    if (authz !== undefined && /^basic\s/i.test(authz)) {
      basic = true;
      if (secret !== undefined) {
        throw entraError(400, 'invalid_request', 90014, 'Client credentials were sent both in the body and in the Authorization header.');
      }
      const decoded = Buffer.from(authz.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const dec = (s: string): string => {
        try {
          return decodeURIComponent(s.replace(/\+/g, ' '));
        } catch {
          return s;
        }
      };
      const basicId = dec(colon < 0 ? decoded : decoded.slice(0, colon));
      if (clientId !== undefined && clientId.toLowerCase() !== basicId.toLowerCase()) {
        throw entraError(400, 'invalid_request', 90014, 'client_id in the body does not match the Authorization header.');
      }
      clientId = basicId;
      secret = colon < 0 ? '' : dec(decoded.slice(colon + 1));
    }
    const challenge: Record<string, string> = basic ? { 'www-authenticate': 'Basic realm="entra-emulator"' } : {};
    if (!clientId) {
      throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_id'.");
    }
    const client = clients.find((c) => c.clientId === clientId.toLowerCase() && c.tenantId === tenant);
    if (!client) {
      throw entraError(
        401,
        'invalid_client',
        700016,
        `Application with identifier '${clientId.slice(0, 100)}' was not found in the directory '${tenant}'.`,
        challenge,
      );
    }
    if (!secret) {
      throw entraError(
        401,
        'invalid_client',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        challenge,
      );
    }
    const a = createHash('sha256').update(secret).digest();
    const b = createHash('sha256').update(client.clientSecret).digest();
    if (!timingSafeEqual(a, b)) {
      throw entraError(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${client.clientId}'.`,
        challenge,
      );
    }
    return client;
  }

  /** Client-credentials grant. `v2` takes `scope={resource}/.default`; v1 (`/oauth2/token`) takes `resource`. */
  async function tokenEndpoint(req: IncomingMessage, segment: string, endpoint: TokenVersion): Promise<[number, unknown, Record<string, string>]> {
    const tenantLower = segment.toLowerCase();
    if (TENANT_ALIASES.has(tenantLower)) {
      throw entraError(
        400,
        'invalid_request',
        50194,
        "Usage of the /common endpoint is not supported for this application. Use a tenant-specific endpoint.",
      );
    }
    if (!tenants.includes(tenantLower)) throw unknownTenant(segment, 'invalid_request');
    const contentType = (req.headers['content-type'] ?? '').toLowerCase();
    const body = await readBody(req);
    if (!contentType.startsWith('application/x-www-form-urlencoded')) {
      throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    }
    const form = new URLSearchParams(body.toString('utf8'));
    for (const name of ['grant_type', 'client_id', 'client_secret', 'scope', 'resource']) {
      if (form.getAll(name).length > 1) {
        throw entraError(400, 'invalid_request', 90014, `The parameter '${name}' was sent more than once.`);
      }
    }
    const grant = form.get('grant_type');
    if (!grant) {
      throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    }
    if (grant !== 'client_credentials') {
      throw entraError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grant.slice(0, 100)}'.`);
    }
    const client = authenticateClient(req, form, tenantLower);

    let resource: string;
    if (endpoint === '2.0') {
      const scope = form.get('scope');
      if (!scope) {
        throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'scope'.");
      }
      const scopes = scope.split(' ').filter(Boolean);
      const only = scopes[0];
      if (scopes.length !== 1 || only === undefined || !only.endsWith('/.default')) {
        throw entraError(
          400,
          'invalid_scope',
          1002012,
          `The provided value for scope ${scope.slice(0, 200)} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
        );
      }
      resource = only.slice(0, -'/.default'.length);
    } else {
      resource = form.get('resource') ?? '';
      if (!resource) {
        throw entraError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'resource'.");
      }
    }
    const api = minter.findApi(resource);
    if (!api) {
      throw entraError(
        400,
        'invalid_scope',
        500011,
        `The resource principal named ${resource.slice(0, 200)} was not found in the tenant named ${tenantLower}.`,
      );
    }
    const version = api.accessTokenVersion === 1 ? '1.0' : '2.0';
    // v1 `aud` is what the client asked for (App ID URI or GUID); v2 `aud` is always the GUID.
    const audience = version === '1.0' ? (resource.toLowerCase() === api.appId ? api.appId : resource) : api.appId;
    const iat = Math.floor(now() / 1000);
    const key = await deps.signerFor(api);
    const accessToken = minter.mint(
      {
        tenant: tenantLower,
        version,
        audience,
        appId: client.clientId,
        roles: client.roles[api.appId] ?? [],
        issuedAt: iat,
      },
      key,
      key.kid,
    );
    const noStore = { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' };
    if (endpoint === '2.0') {
      return [
        200,
        { token_type: 'Bearer', expires_in: TOKEN_LIFETIME_SECONDS, ext_expires_in: TOKEN_LIFETIME_SECONDS, access_token: accessToken },
        noStore,
      ];
    }
    return [
      200,
      {
        token_type: 'Bearer',
        expires_in: String(TOKEN_LIFETIME_SECONDS),
        ext_expires_in: String(TOKEN_LIFETIME_SECONDS),
        expires_on: String(iat + TOKEN_LIFETIME_SECONDS),
        not_before: String(iat),
        resource,
        access_token: accessToken,
      },
      noStore,
    ];
  }


  type Route =
    | { kind: EmulatorFetchKind; version: TokenVersion; tenant: string; userFlow?: undefined }
    | { kind: 'discovery' | 'jwks'; version: '2.0'; tenant: string; userFlow: string }
    | { kind: 'rotate' };

  /** B2C metadata and keys of a served user flow, below the tenant's domain or id. */
  function b2cRoute(tenantSegment: string, rest: string): Route | undefined {
    const b2c = deps.b2c;
    const matched = b2c === undefined ? undefined : matchB2cPath(rest);
    if (b2c === undefined || matched === undefined || matched.endpoint === 'authorize') return undefined;
    const tenant = tenantSegment.toLowerCase();
    const userFlow = b2c.userFlows.find((f) => f.toLowerCase() === matched.userFlow.toLowerCase());
    if ((tenant !== b2c.domain && tenant !== tenants[0]) || userFlow === undefined) return undefined;
    return { kind: matched.endpoint === 'metadata' ? 'discovery' : 'jwks', version: '2.0', tenant, userFlow };
  }

  /** A user flow's OpenID metadata, shaped like B2C's. */
  function discoveryB2c(tenantSegment: string, userFlow: string): Record<string, unknown> {
    const base = `${tenantAuthority(url(), tenantSegment)}/${userFlow}`;
    return {
      issuer: deps.b2c?.issuer(tenants[0] ?? '', userFlow),
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      token_endpoint: `${base}/oauth2/v2.0/token`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      jwks_uri: b2cUrl(url(), tenantSegment, userFlow, 'jwks'),
      response_modes_supported: ['query', 'fragment', 'form_post'],
      response_types_supported: ['code', 'code id_token', 'code token', 'code id_token token', 'id_token', 'id_token token', 'token', 'token id_token'],
      scopes_supported: ['openid'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
      claims_supported: ['oid', 'sub', 'idp', 'tfp', 'iss', 'iat', 'exp', 'aud', 'acr', 'nonce', 'auth_time'],
    };
  }

  /** Entra's paths (from the one URL table) plus the emulator's own rotate control. */
  function route(path: string): Route | undefined {
    if (path === '/_emulator/rotate') return { kind: 'rotate' };
    const m = /^\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return undefined;
    const b2c = b2cRoute(decodeSegment(m[1] ?? ''), m[2] ?? '');
    if (b2c) return b2c;
    const matched = matchEntraPath(m[2] ?? '');
    if (!matched) return undefined;
    const kind = ROUTE_KINDS[matched.endpoint];
    return kind ? { kind, version: matched.version, tenant: decodeSegment(m[1] ?? '') } : undefined;
  }

  async function handle(req: IncomingMessage): Promise<[number, unknown, Record<string, string>]> {
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    const graphAnswer = await deps.graph.handle(req.method ?? '', rawPath, req.headers.authorization, () => readBody(req));
    if (graphAnswer !== undefined) return [...graphAnswer];
    const query = new URLSearchParams((req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?') + 1) : '');
    const r = route(rawPath);
    if (!r) throw new HttpError(404, { error: 'not_found', error_description: 'No such endpoint on the Entra emulator.' });
    const allowed = r.kind === 'token' || r.kind === 'rotate' ? ['POST'] : ['GET', 'HEAD'];
    if (!allowed.includes(req.method ?? '')) {
      throw new HttpError(
        405,
        { error: 'method_not_allowed', error_description: `Use ${allowed.join(' or ')}.` },
        { allow: allowed.join(', ') },
      );
    }
    if (r.kind === 'rotate') {
      // A dev convenience and test control: it works even while "Entra" is down.
      const kid = await deps.rotateKeys(query.get('retireOld') === 'true');
      return [200, { kid }, { 'cache-control': 'no-store' }];
    }
    state.counts[r.kind]++;
    if (!state.available) {
      throw new HttpError(
        503,
        { error: 'temporarily_unavailable', error_description: 'The Entra emulator is set unavailable.' },
        { 'retry-after': '1' },
      );
    }
    await deps.delay();
    const metaHeaders = { 'cache-control': 'max-age=86400, private', 'access-control-allow-origin': '*' };
    if (r.userFlow !== undefined) {
      // B2C keys carry no issuer property (the v1 shape of the key ring's JWKS).
      return [200, r.kind === 'discovery' ? discoveryB2c(r.tenant, r.userFlow) : keys.jwks('1.0', ''), metaHeaders];
    }
    switch (r.kind) {
      case 'discovery': {
        const t = resolveTenant(r.tenant, true);
        const appId = query.get('appid');
        return [200, r.version === '2.0' ? discoveryV2(t, appId) : discoveryV1(t, appId), metaHeaders];
      }
      case 'jwks': {
        resolveTenant(r.tenant, true);
        const appId = query.get('appid')?.toLowerCase();
        const appKey = appId !== undefined && deps.appsWithOwnKeys.has(appId) ? await keys.appKey(appId) : undefined;
        return [200, keys.jwks(r.version, minter.issuer(TENANT_ID_TEMPLATE, '2.0'), appKey), metaHeaders];
      }
      case 'token':
        return tokenEndpoint(req, r.tenant, r.version);
    }
  }

  function respond(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
    const payload = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(payload),
      'x-ms-request-id': randomUUID(),
      ...headers,
    });
    res.end(payload);
  }

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    res.on('finish', () => {
      try {
        deps.onRequest?.({ method: req.method ?? '', path, status: res.statusCode });
      } catch {
        // a logging callback must not break the emulator
      }
    });
    handle(req)
      .then(([status, body, headers]) => respond(res, status, body, headers))
      .catch((err: unknown) => {
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        if (err instanceof HttpError) respond(res, err.status, err.body, err.headers);
        else respond(res, 500, { error: 'server_error', error_description: 'Internal emulator error.' }, {});
      });
  };
}
