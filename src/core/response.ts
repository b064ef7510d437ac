import type { Decision } from './decision.js';
import { reasonInfo, type GrpcCode } from './reasons.js';

/** Values dynamic metadata may hold (a protobuf Struct). */
export type MetadataValue = string | number | boolean | readonly string[];
export type Metadata = Readonly<Record<string, MetadataValue>>;

/** What Envoy should do, independent of the protobuf shape (the server adapter builds that). */
export type ResponsePlan =
  | {
      readonly kind: 'allow';
      /** Names the plan by everything but its decision id (see `sameAs`); absent when unnamed. */
      readonly sameAs?: string | undefined;
      /** Set on the upstream request, each with OVERWRITE_IF_EXISTS_OR_ADD. */
      readonly setHeaders: readonly (readonly [string, string])[];
      /** Removed from the upstream request (client-sent identity headers we do not overwrite). */
      readonly removeHeaders: readonly string[];
      readonly metadata: Metadata;
    }
  | {
      readonly kind: 'deny';
      /** Names the plan by everything but its decision id (see `sameAs`); absent when unnamed. */
      readonly sameAs?: string | undefined;
      readonly grpcCode: GrpcCode;
      readonly httpStatus: number;
      readonly headers: readonly (readonly [string, string])[];
      readonly body: string;
      readonly metadata: Metadata;
    }
  | { readonly kind: 'unavailable'; readonly message: string };

/** Request headers removed on every allow: exact names, and name prefixes. Lower-case. */
export interface HeaderStripping {
  readonly names: readonly string[];
  readonly prefixes: readonly string[];
}

/**
 * Headers other identity layers use to tell an upstream who the caller is. An upstream that
 * trusts them would take a client-sent copy for the truth, so they never pass an allow.
 */
export const FOREIGN_IDENTITY_HEADERS: HeaderStripping = {
  names: [
    // oauth2-proxy with --pass-user-headers / --pass-access-token.
    'x-forwarded-user',
    'x-forwarded-email',
    'x-forwarded-groups',
    'x-forwarded-preferred-username',
    'x-forwarded-access-token',
    // Plain reverse-proxy authentication (Apache, Grafana auth.proxy and the like).
    'remote-user',
    'x-remote-user',
    'x-remote-group',
    'x-webauth-user',
    // Cloudflare Access.
    'cf-access-authenticated-user-email',
    'cf-access-jwt-assertion',
  ],
  prefixes: [
    // App Service Authentication ("Easy Auth"): X-MS-CLIENT-PRINCIPAL, -ID, -NAME, -IDP; X-MS-TOKEN-AAD-*.
    'x-ms-client-principal',
    'x-ms-token-aad-',
    // oauth2-proxy's X-Auth-Request-* and generic X-Auth-* / X-User-* conventions.
    'x-auth-',
    'x-user-',
    // Pomerium, Google IAP, AWS ALB OIDC.
    'x-pomerium-',
    'x-goog-authenticated-user-',
    'x-amzn-oidc-',
  ],
};

/** The headers to strip for a `response.stripHeaders` setting: the well-known ones unless turned off, plus the configured ones. */
export function headerStripping(setting: { readonly wellKnown: boolean } & HeaderStripping): HeaderStripping {
  const base = setting.wellKnown ? FOREIGN_IDENTITY_HEADERS : { names: [], prefixes: [] };
  return {
    names: [...new Set([...base.names, ...setting.names])],
    prefixes: [...new Set([...base.prefixes, ...setting.prefixes])],
  };
}

export interface ResponseSettings {
  readonly identityHeaders: {
    readonly oid: string;
    readonly tid: string;
    readonly appId: string;
    readonly roles: string;
    readonly scopes: string;
    readonly tokenType: string;
    readonly decisionId: string;
    readonly peerPrincipal: string;
    readonly peerFingerprint: string;
  };
  readonly tokenHeader: string;
  readonly removeTokenHeader: boolean;
  readonly realm: string;
  /**
   * Header set upstream on a dry-run allow, with the would-be reason code (`response.dryRunHeader`);
   * removed from every other allowed request so a client cannot send its own.
   */
  readonly dryRunHeader?: string | undefined;
  /** `authorization_uri` in challenges, e.g. https://login.microsoftonline.com/{tenant}/oauth2/authorize. */
  readonly authorizationUri: string;
  /** Client-sent headers removed from every allowed request (see `headerStripping`). */
  readonly stripHeaders: HeaderStripping;
  /** Names this configuration's plans (see `sameAs`): unique per configuration. Plans are unnamed without it. */
  readonly planScope?: string | undefined;
}

/** The caller's mTLS identity as the response shows it (mTLS's PeerIdentity fits this shape). */
export interface PeerFacts {
  readonly principal: string;
  readonly fingerprintSha256?: string | undefined;
  /** Flat `peer_*` keys for the dynamic metadata. */
  readonly metadata: Readonly<Record<string, string>>;
}

function metadataOf(decision: Decision, peer: PeerFacts | undefined): Record<string, MetadataValue> {
  const m: Record<string, MetadataValue> = { decision_id: decision.id, reason: decision.reason };
  if (peer) Object.assign(m, peer.metadata);
  if (decision.rule !== undefined) m['rule'] = decision.rule;
  if (decision.dryRun !== undefined) m['dry_run_would_deny'] = decision.dryRun.wouldDeny;
  const id = decision.identity;
  if (id) {
    m['oid'] = id.oid;
    m['tid'] = id.tid;
    m['app_id'] = id.appId;
    m['token_type'] = id.type;
    m['token_version'] = id.version;
    m['roles'] = id.roles;
    m['scopes'] = id.scopes;
  }
  return m;
}

/**
 * Builds a WWW-Authenticate value; every parameter is a fixed string or base64, so no quoting
 * issues. A claims challenge takes Microsoft's documented form: realm, authorization_uri,
 * error="insufficient_claims" and the base64 claims request, nothing else.
 */
function challenge(settings: ResponseSettings, error: string | null, description: string, claims: string | undefined): string {
  const params = [`realm="${settings.realm}"`, `authorization_uri="${settings.authorizationUri}"`];
  if (error === 'insufficient_claims' && claims !== undefined) params.push(`error="${error}"`, `claims="${Buffer.from(claims, 'utf8').toString('base64')}"`);
  else if (error !== null) params.push(`error="${error}"`, `error_description="${description}"`);
  return `Bearer ${params.join(', ')}`;
}

/**
 * The request's headers that start with a `stripHeaders` prefix, since Envoy's `headers_to_remove`
 * takes exact names only. Never the token header (`removeTokenHeader` decides that one).
 */
function prefixedHeaders(settings: ResponseSettings, requestHeaders: Iterable<string>): string[] {
  const out: string[] = [];
  const { prefixes } = settings.stripHeaders;
  if (prefixes.length === 0) return out;
  for (const name of requestHeaders) {
    if (name !== settings.tokenHeader && prefixes.some((p) => name.startsWith(p))) out.push(name);
  }
  return out;
}

/**
 * The `stripHeaders` entries to remove from this request: every exact name (Envoy may not have sent
 * the header to us, see `allowed_headers`) but the token header, and the `prefixed` ones present.
 * Never the headers set on this allow.
 */
function strippedHeaders(settings: ResponseSettings, prefixed: readonly string[], set: ReadonlySet<string>): string[] {
  const out = settings.stripHeaders.names.filter((name) => !set.has(name) && name !== settings.tokenHeader);
  for (const name of prefixed) if (!set.has(name)) out.push(name);
  return out;
}

/**
 * What Envoy should do with the request. `requestHeaders` are the lower-case names of the
 * request's headers, for prefix-based stripping.
 */
export function planResponse(decision: Decision, settings: ResponseSettings, peer?: PeerFacts, requestHeaders: Iterable<string> = []): ResponsePlan {
  const info = reasonInfo(decision.reason);
  if (decision.kind === 'unavailable') return { kind: 'unavailable', message: decision.reason };

  const h = settings.identityHeaders;
  if (decision.kind === 'allow') {
    const id = decision.identity;
    const values: [string, string][] = [[h.decisionId, decision.id]];
    if (id) {
      values.push([h.oid, id.oid], [h.tid, id.tid], [h.appId, id.appId], [h.tokenType, id.type]);
      values.push([h.roles, id.roles.join(',')], [h.scopes, id.scopes.join(' ')]);
    }
    if (peer) values.push([h.peerPrincipal, peer.principal], [h.peerFingerprint, peer.fingerprintSha256 ?? '']);
    // Empty values are not sent; the header is removed instead so a client-sent copy never survives.
    const setHeaders = values.filter(([, v]) => v !== '');
    const set = new Set(setHeaders.map(([k]) => k));
    const removeHeaders = Object.values(h).filter((k) => !set.has(k));
    if (settings.dryRunHeader !== undefined) {
      if (decision.dryRun !== undefined) {
        setHeaders.push([settings.dryRunHeader, decision.dryRun.wouldDeny]);
        set.add(settings.dryRunHeader);
      } else removeHeaders.push(settings.dryRunHeader);
    }
    if (settings.removeTokenHeader && decision.identity) removeHeaders.push(settings.tokenHeader);
    const prefixed = prefixedHeaders(settings, requestHeaders);
    removeHeaders.push(...strippedHeaders(settings, prefixed, set));
    return {
      kind: 'allow',
      sameAs: nameOf(settings.planScope, decision, peer, prefixed),
      setHeaders,
      removeHeaders: [...new Set(removeHeaders)],
      metadata: metadataOf(decision, peer),
    };
  }

  const headers: [string, string][] = [
    ['content-type', 'application/json'],
    [h.decisionId, decision.id],
  ];
  const claims = decision.kind === 'deny' ? decision.claimsChallenge : undefined;
  if (info.challenge) headers.push(['www-authenticate', challenge(settings, info.bearerError, info.message, claims)]);
  const body = JSON.stringify({ error: decision.reason, message: info.message, decision_id: decision.id });
  return { kind: 'deny', sameAs: nameOf(settings.planScope, decision, peer, null), grpcCode: info.grpcCode, httpStatus: info.httpStatus, headers, body, metadata: metadataOf(decision, peer) };
}

/**
 * A name for everything a plan is built from except the decision id: plans with the same name are
 * equal but for the id, so an adapter may encode an answer once per caller, rule, outcome and peer
 * and reuse it. `scope` stands for the settings. The caller is named by its token's hash: under one
 * configuration one token gives one identity. Request headers reach a plan only through the
 * `prefixed` ones an allow removes.
 */
function nameOf(scope: string | undefined, decision: Decision, peer: PeerFacts | undefined, prefixed: readonly string[] | null): string | undefined {
  if (scope === undefined) return undefined;
  const claims = decision.kind === 'deny' ? decision.claimsChallenge : undefined;
  const facts = [decision.identity?.tokenHash ?? null, decision.kind, decision.reason, decision.rule ?? null, decision.dryRun?.wouldDeny ?? null, claims ?? null];
  const peerFacts = peer === undefined ? null : [peer.principal, peer.fingerprintSha256 ?? null, peer.metadata];
  return JSON.stringify([scope, facts, peerFacts, prefixed]);
}
