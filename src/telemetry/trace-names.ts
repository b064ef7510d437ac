/**
 * Span and attribute names: part of the observable contract, documented in docs/observability.md.
 * The `entra_authz.*` attributes are the project's own; the rest follow OpenTelemetry's semantic
 * conventions.
 */

export const SPAN_CHECK = 'envoy.service.auth.v3.Authorization/Check';

/** Child spans of a check: the decision engine passes the phases to `CheckSpan.phase`; key fetches and Graph calls are separate. */
export const PHASE = {
  verifyToken: 'token.verify',
  evaluateRules: 'policy.evaluate',
  keyFetch: 'keys.fetch',
  graphCall: 'graph.call',
} as const;

export const ATTR = {
  decisionId: 'entra_authz.decision_id',
  decision: 'entra_authz.decision',
  reason: 'entra_authz.reason',
  rule: 'entra_authz.rule',
  tenantId: 'entra_authz.tenant_id',
  appId: 'entra_authz.app_id',
  cacheHit: 'entra_authz.cache_hit',
  /** `grpc` (Envoy's Check) or `http` (an HTTP authorization request). */
  mode: 'entra_authz.mode',
  dryRun: 'entra_authz.dry_run',
  /** On dry-run allows: the reason code enforcement would have denied with. */
  wouldDeny: 'entra_authz.would_deny',
  /** On key-fetch spans: `discovery` or `jwks`. */
  keyFetchKind: 'entra_authz.key_fetch.kind',
  /** On key-fetch spans: `ok` or `error`. */
  keyFetchResult: 'entra_authz.key_fetch.result',
  rpcSystem: 'rpc.system',
  rpcService: 'rpc.service',
  rpcMethod: 'rpc.method',
  /** The RPC's own status: 0 for every answered Check (allow or deny), 14 when it fails. */
  grpcStatusCode: 'rpc.grpc.status_code',
  /** HTTP-mode checks: the authorization request's method, `_OTHER` for unknown ones. */
  httpMethod: 'http.request.method',
  httpMethodOriginal: 'http.request.method_original',
  /** HTTP-mode checks: the endpoint's template. */
  httpRoute: 'http.route',
  /** HTTP-mode checks: the authorization request's path, normalised, without the query. */
  urlPath: 'url.path',
  httpStatusCode: 'http.response.status_code',
  errorType: 'error.type',
} as const;
