import { z } from 'zod';
import { CLOUD_NAMES, CLOUDS } from '../authn/entra/clouds.js';
import { listenSchema } from './listen.js';
import { GRPC_PATTERN, HOST_PATTERN, METHOD_PATTERN, RULE_NAME_PATTERN, pathPatternProblem } from '../policy/patterns.js';
import { peerRequirementSchema, peerSourceSchema, tlsListenerSchema } from './schema-mtls.js';
import { telemetrySectionSchema } from './schema-telemetry.js';

/**
 * The configuration file's schema. Types are inferred from it, so the schema is the single source
 * of truth; `docs/configuration.md` documents every field with an example.
 *
 * Every object is strict: an unknown (e.g. misspelt) key is an error, never silently ignored.
 */

// Explicit classes rather than the `i` flag: JSON Schema patterns carry no flags.
const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const headerName = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, 'expected a lower-case HTTP header name');

const nonEmptyStrings = z.array(z.string().min(1)).min(1);

// ---------------------------------------------------------------------------------------------
// Rules: what each route requires. Documented in docs/rules.md; compiled once per configuration
// by src/policy/compile.ts (which relies on the patterns below being validated here).
// ---------------------------------------------------------------------------------------------

const guid = z.string().regex(GUID, 'expected a GUID').transform((t) => t.toLowerCase());

const anyAllOf = z
  .strictObject({
    anyOf: nonEmptyStrings.optional().describe('At least one of these values.'),
    allOf: nonEmptyStrings.optional().describe('Every one of these values.'),
  })
  .refine((v) => v.anyOf !== undefined || v.allOf !== undefined, 'give anyOf, allOf or both');

const scopeList = z
  .strictObject({
    anyOf: z.array(z.string().regex(/^\S+$/, 'a scope has no spaces')).min(1).optional(),
    allOf: z.array(z.string().regex(/^\S+$/, 'a scope has no spaces')).min(1).optional(),
  })
  .refine((v) => v.anyOf !== undefined || v.allOf !== undefined, 'give anyOf, allOf or both');

/**
 * A directory object id (group, role template) as a bare GUID or with a display label. Names are
 * not in tokens: the label only makes `explain`, audit details and docs readable.
 */
const directoryObject = z
  .union([guid, z.strictObject({ id: guid, label: z.string().min(1).max(128).describe('Display name, for explain and audit details only.') })])
  .transform((v) => (typeof v === 'string' ? { id: v, label: undefined } : v));

const directoryObjects = z
  .strictObject({
    anyOf: z.array(directoryObject).min(1).optional().describe('At least one of these object ids.'),
    allOf: z.array(directoryObject).min(1).optional().describe('Every one of these object ids.'),
  })
  .refine((v) => v.anyOf !== undefined || v.allOf !== undefined, 'give anyOf, allOf or both');

/** Client authentication strength, weakest first, as `appidacr`/`azpacr` number it (0, 1, 2). */
export const CLIENT_AUTHENTICATION = ['public', 'secret', 'certificate'] as const;

/** Requirements that read the verified token; not allowed beside `peer.peerOnly`. */
const TOKEN_REQUIREMENTS = [
  'roles',
  'scopes',
  'appIds',
  'tenants',
  'tokenType',
  'groups',
  'directoryRoles',
  'clientAuthentication',
  'mfa',
  'authenticationContext',
] as const;

/** Requirements only user (delegated) tokens can meet. */
const USER_ONLY_REQUIREMENTS = ['scopes', 'mfa', 'authenticationContext'] as const;

const requirementFields = {
  roles: anyAllOf.optional().describe('App roles (`roles` claim).'),
  scopes: scopeList.optional().describe('Delegated scopes (`scp` claim, user tokens only).'),
  appIds: z.array(guid).min(1).optional().describe('Client id of the calling application (`appid` in v1, `azp` in v2): any of these.'),
  tenants: z.array(guid).min(1).optional().describe('Tenant of the token (`tid`): any of these; each must also be in `entra.tenants`.'),
  tokenType: z.enum(['app', 'user']).optional().describe('`app`: app-only tokens (client credentials, managed identities); `user`: delegated tokens.'),
  groups: directoryObjects.optional().describe('Security groups by object id (`groups` claim; see docs/entra.md for group overage).'),
  directoryRoles: directoryObjects.optional().describe('Directory roles by role template id (`wids` claim).'),
  clientAuthentication: z
    .enum(CLIENT_AUTHENTICATION)
    .optional()
    .describe('Weakest accepted client authentication (`appidacr`/`azpacr`): `public` (none), `secret`, `certificate` (certificate, client assertion, managed identity).'),
  mfa: z.literal(true).optional().describe('The user signed in with multi-factor authentication (`amr` contains `mfa`).'),
  authenticationContext: z
    .string()
    .regex(/^c([1-9]|[1-9][0-9])$/, 'expected an authentication context id c1 … c99')
    .optional()
    .describe('A Conditional Access authentication context the token must satisfy (`acrs` claim), e.g. `c1`.'),
  peer: peerRequirementSchema.optional().describe('The mTLS peer (client certificate): SPIFFE ids/patterns, DNS SANs, bound tokens, peerOnly — see docs/mtls.md.'),
};

type RequirementFields = { [K in keyof typeof requirementFields]?: z.output<(typeof requirementFields)[K]> };

function checkRequirementSet(set: RequirementFields, ctx: z.RefinementCtx, path: PropertyKey[]): void {
  if (set.tokenType !== 'app') return;
  for (const key of USER_ONLY_REQUIREMENTS) {
    if (set[key] !== undefined) {
      ctx.addIssue({ code: 'custom', path: [...path, key], message: `app-only tokens never carry ${key}: tokenType "app" with ${key} can never be met` });
    }
  }
}

/** One alternative of `require.anyOf`: the same requirements, without nesting. */
const alternativeSchema = z
  .strictObject(requirementFields)
  .refine((v) => Object.values(v).some((x) => x !== undefined), 'an alternative needs at least one requirement');

export const requirementSchema = z
  .strictObject({
    ...requirementFields,
    anyOf: z
      .array(alternativeSchema)
      .min(1)
      .optional()
      .describe('Met when at least one alternative is met in full (on top of the requirements beside it), e.g. an app token with role X or a user token with scope X.'),
  })
  .superRefine((req, ctx) => {
    checkRequirementSet(req, ctx, []);
    const readsToken = (set: RequirementFields): boolean => TOKEN_REQUIREMENTS.some((k) => set[k] !== undefined);
    const peerOnlyAlternative = req.anyOf?.some((a) => a.peer?.peerOnly === true) ?? false;
    req.anyOf?.forEach((alt, i) => {
      checkRequirementSet(
        { tokenType: alt.tokenType ?? req.tokenType, scopes: alt.scopes ?? req.scopes, mfa: alt.mfa ?? req.mfa, authenticationContext: alt.authenticationContext ?? req.authenticationContext },
        ctx,
        ['anyOf', i],
      );
      if (req.tokenType !== undefined && alt.tokenType !== undefined && alt.tokenType !== req.tokenType) {
        ctx.addIssue({ code: 'custom', path: ['anyOf', i, 'tokenType'], message: `conflicts with tokenType "${req.tokenType}" beside anyOf` });
      }
      if (alt.peer?.peerOnly && readsToken(alt)) {
        ctx.addIssue({ code: 'custom', path: ['anyOf', i, 'peer', 'peerOnly'], message: 'a peerOnly alternative cannot also require token claims (make them two alternatives)' });
      }
      if (req.peer?.peerOnly && readsToken(alt)) {
        ctx.addIssue({ code: 'custom', path: ['anyOf', i], message: 'reads the token, but peer.peerOnly beside anyOf means no token is needed' });
      }
    });
    if ((req.peer?.peerOnly || peerOnlyAlternative) && readsToken(req)) {
      const where = req.peer?.peerOnly ? 'peer.peerOnly' : 'a peerOnly alternative';
      for (const key of TOKEN_REQUIREMENTS) {
        if (req[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `reads the token, but ${where} means no token is needed` });
      }
    }
  });

const pathPattern = z.string().superRefine((p, ctx) => {
  const problem = pathPatternProblem(p);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

/** One path alternative: exactly one of `exact`, `prefix`, `grpc`. */
export const pathMatchSchema = z
  .strictObject({
    exact: pathPattern.optional().describe('The whole path, exactly (case-sensitive, query string excluded).'),
    prefix: pathPattern.optional().describe('This path and everything below it, by whole segments: `/api` matches `/api` and `/api/x`, not `/apiary`.'),
    grpc: z.string().regex(GRPC_PATTERN, 'expected package.Service or package.Service/Method').optional().describe('A gRPC service (`pkg.v1.Svc`: all its methods) or method (`pkg.v1.Svc/Method`).'),
  })
  .refine((v) => [v.exact, v.prefix, v.grpc].filter((x) => x !== undefined).length === 1, 'give exactly one of exact, prefix, grpc');

export const matchSchema = z.strictObject({
  contextExtensions: z.record(z.string().min(1), z.string()).optional().describe('Every listed context extension must be present with exactly this value.'),
  hosts: z.array(z.string().regex(HOST_PATTERN, 'expected a host name, IP address or *.domain (no port)')).min(1).optional().describe('Any of these hosts (`:authority`, port ignored, case-insensitive); `*.example.com` matches any subdomain.'),
  paths: z.array(pathMatchSchema).min(1).optional().describe('Any of these paths.'),
  methods: z.array(z.string().regex(METHOD_PATTERN, 'expected an HTTP method such as GET')).min(1).optional().describe('Any of these HTTP methods (case-insensitive).'),
});

export const ruleSchema = z
  .strictObject({
    name: z.string().regex(RULE_NAME_PATTERN, 'use 1-128 letters, digits and . _ : -').describe('Unique name, shown in audit records, metrics and explain.'),
    description: z.string().max(1024).optional().describe('Free text shown by `explain`.'),
    match: matchSchema.default({}).describe('What requests the rule applies to; all given kinds must fit. An empty match applies to every request.'),
    allowAnonymous: z.boolean().default(false).describe('Allow without any credential (health checks, public metadata). Takes no `require`.'),
    require: requirementSchema.optional().describe('What the caller must present; omitted means any valid token.'),
    dryRun: z.boolean().optional().describe('Record would-be denials of this rule but allow; overrides the top-level `dryRun`.'),
  })
  .superRefine((rule, ctx) => {
    if (rule.allowAnonymous && rule.require !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['require'], message: 'allowAnonymous rules take no requirements (remove one of the two)' });
    }
  });

export const identityHeadersSchema = z.strictObject({
  oid: headerName.default('x-entra-oid'),
  tid: headerName.default('x-entra-tid'),
  appId: headerName.default('x-entra-app-id'),
  roles: headerName.default('x-entra-roles'),
  scopes: headerName.default('x-entra-scopes'),
  tokenType: headerName.default('x-entra-token-type'),
  decisionId: headerName.default('x-entra-decision-id'),
  /** mTLS peer principal (SPIFFE ID, else first DNS SAN, else subject), when a peer is known. */
  peerPrincipal: headerName.default('x-entra-peer-principal'),
  /** Hex SHA-256 fingerprint of the peer certificate, when one was presented. */
  peerFingerprint: headerName.default('x-entra-peer-fingerprint'),
});

/** `response.stripHeaders`; merged with the well-known foreign identity headers by core/response.ts. */
export const stripHeadersSchema = z.strictObject({
  wellKnown: z.boolean().default(true).describe('Also strip the well-known identity headers of other systems (App Service, oauth2-proxy, Pomerium, X-Auth-*, X-User-*, …; see docs/configuration.md).'),
  names: z.array(headerName).default([]).describe('Further request headers, by exact name, removed on every allow.'),
  prefixes: z.array(headerName).default([]).describe('Further request headers, by name prefix, removed on every allow (those present in the request).'),
});

/** How entra-authz signs in to Microsoft Graph as itself (through @azure/identity). */
const graphCredentialSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('clientSecret'),
    clientId: guid,
    clientSecret: z.string().min(1).describe('Use ${ENV} substitution; never logged.'),
  }),
  z.strictObject({
    kind: z.literal('certificate'),
    clientId: guid,
    certificatePath: z.string().min(1).describe('PEM file holding the private key and certificate.'),
  }),
  z.strictObject({ kind: z.literal('workloadIdentity'), clientId: guid.optional() }),
  z.strictObject({ kind: z.literal('managedIdentity'), clientId: guid.optional().describe('A user-assigned identity; omitted: the system-assigned one.') }),
]);

const graphSchema = z.strictObject({
  endpoint: z
    .url({ protocol: /^https?$/ })
    .transform((u) => u.replace(/\/+$/, ''))
    .optional()
    .describe('Microsoft Graph host; default: the one of `entra.cloud` (e.g. https://graph.microsoft.us for usGovernment).'),
  credential: graphCredentialSchema.describe('The server\'s own app credentials; the app needs the GroupMember.Read.All application permission.'),
  timeoutMs: z.number().int().min(100).max(30_000).default(400).describe('Timeout of one Graph call; keep it under Envoy\'s ext_authz timeout.'),
  cache: z
    .strictObject({
      maxEntries: z.number().int().min(1).max(1_000_000).default(10_000),
      ttlSeconds: z.number().int().min(1).max(3600).default(300),
    })
    .default({ maxEntries: 10_000, ttlSeconds: 300 })
    .describe('Membership answers kept per (tenant, object id).'),
});

/** An app registration's client id, for its own signing keys (claims mapping). */
const appClientId = z.string().regex(GUID, 'expected the API app registration\'s client id (a GUID)').transform((t) => t.toLowerCase());

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      /** gRPC listener for Envoy's Check calls. */
      listen: listenSchema.default('0.0.0.0:9001'),
      /** How long in-flight checks may take to finish on SIGTERM/SIGINT before the server exits. */
      shutdownGraceSeconds: z.number().positive().max(300).default(10),
      /** Largest single request header value accepted in a CheckRequest. */
      maxHeaderBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(256 * 1024),
      /** TLS (and optionally required client certificates) on the gRPC listener — see docs/mtls.md. */
      tls: tlsListenerSchema.optional(),
      /** Longest a check waits for a signing-key refresh before it is answered without it. */
      checkDeadlineMs: z.number().int().min(10).max(10_000).default(300),
      /**
       * HTTP listener for forward-auth requests (Envoy http_service, nginx auth_request, Caddy and
       * Traefik forward auth) — see docs/http-mode.md. Off unless set.
       */
      http: z
        .strictObject({
          listen: listenSchema,
          /** TLS (and optionally required client certificates) on the HTTP listener, as for gRPC. */
          tls: tlsListenerSchema.optional(),
        })
        .optional(),
      /**
       * Processes serving the gRPC listener (node:cluster); absent means one per available core,
       * 1 keeps everything in one process. Changes take effect at the next start.
       */
      workers: z.number().int().min(1).max(256).optional(),
    })
    .default({ listen: '0.0.0.0:9001', shutdownGraceSeconds: 10, maxHeaderBytes: 256 * 1024, checkDeadlineMs: 300 }),

  /** Where the caller's mTLS identity is read from (CA bundle, trusted XFCC) — see docs/mtls.md. */
  peer: peerSourceSchema.default(peerSourceSchema.parse({})),

  /** Admin endpoints and audit log — see docs/observability.md. */
  telemetry: telemetrySectionSchema,

  entra: z.strictObject({
    /** The Entra cloud: sets the default authority and Microsoft Graph host together. */
    cloud: z.enum(CLOUD_NAMES).default('public'),
    /** Authority host; default: the cloud's. Set it for External ID (`ciamlogin.com`) or the local emulator. */
    authority: z
      .url({ protocol: /^https?$/ })
      .transform((u) => u.replace(/\/+$/, ''))
      .optional(),
    /** Tenant allow-list: tokens from any other tenant are refused. Keys are loaded for each. */
    tenants: z.array(z.string().regex(GUID, 'expected a tenant GUID').transform((t) => t.toLowerCase())).min(1),
    /** Accepted `aud` values, exact match (client-id GUID and/or App ID URI). */
    audiences: nonEmptyStrings,
    /** Accepted token versions; each version's issuer is taken from its OpenID metadata. */
    tokenVersions: z
      .array(z.enum(['1.0', '2.0']))
      .min(1)
      .default(['1.0', '2.0']),
    clockSkewSeconds: z.number().int().min(0).max(3600).default(300),
    /** Header the token is read from. */
    tokenHeader: headerName.default('authorization'),
    /** Tokens longer than this are refused before any parsing. */
    maxTokenBytes: z.number().int().min(512).max(256 * 1024).default(64 * 1024),
    /**
     * Client id of this API when its app registration uses claims mapping: Entra then signs its
     * tokens with app-specific keys, fetched with `?appid=` on the metadata URL. A map from
     * audience to client id when only some audiences (or several apps) use claims mapping.
     */
    signingKeysAppId: z.union([appClientId, z.record(z.string().min(1), appClientId)]).optional(),
    /**
     * Azure AD B2C: keys and issuer come from each user flow's own metadata, and a token must name
     * one of these flows (`tfp` or `acr`). `tenants` then holds the B2C tenant id alone.
     */
    b2c: z
      .strictObject({
        /** The tenant in metadata URLs: its domain (`contoso.onmicrosoft.com`); default: the tenant id. */
        tenant: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, 'expected the B2C tenant domain, e.g. contoso.onmicrosoft.com').transform((t) => t.toLowerCase()).optional(),
        /** Accepted user flows or custom policies; B2C compares their names case-insensitively. */
        userFlows: z
          .array(z.string().regex(/^[Bb]2[Cc]_1[Aa]?_[A-Za-z0-9_-]+$/, 'expected a user flow name such as B2C_1_signupsignin'))
          .min(1),
      })
      .optional(),
    /** Group membership from Microsoft Graph for tokens with group overage (see docs/entra.md). */
    graph: graphSchema.optional(),
    /**
     * Continuous access evaluation: accept the long-lived tokens (up to 28 h) Entra issues to
     * clients that handle claims challenges (`xms_cc` has `cp1`). Off: no token may live over 24 h.
     */
    cae: z.boolean().default(false),
    /** Accept tokens with neither `roles` nor `scp` (Microsoft.Identity.Web refuses them by default). */
    allowTokensWithoutPermissions: z.boolean().default(false),
    /** Reuse of successful verifications of the same token (keyed by its SHA-256, never past `exp`). */
    tokenCache: z
      .strictObject({
        /** Most tokens remembered; 0 turns the cache off. */
        maxEntries: z.number().int().min(0).max(1_000_000).default(10_000),
        /** Longest one verification is reused. */
        ttlSeconds: z.number().int().min(1).max(3600).default(300),
      })
      .default({ maxEntries: 10_000, ttlSeconds: 300 }),
    keys: z
      .strictObject({
        /** Longest a fetched key set is trusted without a successful refresh (at most 24 h). */
        ttlSeconds: z.number().int().min(60).max(86_400).default(86_400),
        /** Background refresh period. */
        refreshIntervalSeconds: z.number().int().min(30).max(86_400).default(3600),
        /** An unknown `kid` triggers at most one refresh per tenant in this period (at least 10 s). */
        unknownKidCooldownSeconds: z.number().int().min(10).max(86_400).default(300),
        /** Timeout of one discovery or JWKS fetch, body included. */
        fetchTimeoutMs: z.number().int().min(100).max(30_000).default(2000),
        /** JWKS fetches per minute for all tenants together; refreshes on an unknown `kid` beyond it are skipped. */
        maxJwksFetchesPerMinute: z.number().int().min(1).max(600).default(30),
      })
      .default({ ttlSeconds: 86_400, refreshIntervalSeconds: 3600, unknownKidCooldownSeconds: 300, fetchTimeoutMs: 2000, maxJwksFetchesPerMinute: 30 }),
  })
    .superRefine((entra, ctx) => {
      if (typeof entra.signingKeysAppId === 'object') {
        for (const audience of Object.keys(entra.signingKeysAppId)) {
          if (!entra.audiences.includes(audience)) ctx.addIssue({ code: 'custom', path: ['signingKeysAppId', audience], message: 'not one of entra.audiences' });
        }
      }
      if (entra.b2c === undefined) return;
      if (entra.tenants.length !== 1) ctx.addIssue({ code: 'custom', path: ['tenants'], message: 'with b2c, list the B2C tenant id alone' });
      if (entra.authority === undefined) ctx.addIssue({ code: 'custom', path: ['authority'], message: 'with b2c, set the B2C host, e.g. https://contoso.b2clogin.com' });
    })
    // The cloud fills in what is not given: the authority and the Graph host always name one cloud.
    .transform(({ graph, ...entra }) => ({
      ...entra,
      authority: entra.authority ?? CLOUDS[entra.cloud].authority,
      ...(graph !== undefined ? { graph: { ...graph, endpoint: graph.endpoint ?? CLOUDS[entra.cloud].graph } } : {}),
    })),

  /** Evaluated in file order; the first rule whose match fits decides. No match → deny. */
  rules: z.array(ruleSchema).min(1).describe('Evaluated in file order; the first rule whose match fits decides. No match: deny (no_matching_rule).'),

  /**
   * Report-only mode for every rule (and for requests no rule matches): a request that would be
   * denied is allowed, and the would-be denial is recorded. A rule's own `dryRun` overrides it.
   */
  dryRun: z.boolean().default(false).describe('Report-only mode: would-be denials are allowed and recorded. A rule\'s own dryRun overrides it.'),

  response: z
    .strictObject({
      /** Names of the identity headers added to the upstream request. */
      identityHeaders: identityHeadersSchema.default(identityHeadersSchema.parse({})),
      /** Remove the token's header from the upstream request once it is verified. */
      removeTokenHeader: z.boolean().default(false),
      /** `realm` in WWW-Authenticate challenges. */
      realm: z.string().min(1).regex(/^[^"\\\r\n]*$/, 'no quotes, backslashes or newlines').default('entra-authz'),
      /**
       * When set, a request allowed only because of dry-run carries this header upstream with the
       * would-be reason code (e.g. `x-entra-authz-dry-run: missing_role`); removed otherwise.
       */
      dryRunHeader: headerName.optional().describe('Header set upstream, with the would-be reason code, on requests allowed only because of dry-run.'),
      /** Client-sent headers that other identity layers use, removed on every allow (anonymous ones included). */
      stripHeaders: stripHeadersSchema.default(stripHeadersSchema.parse({})).describe('Request headers removed on every allow, so an upstream never trusts a client-sent identity header.'),
    })
    .default({ identityHeaders: identityHeadersSchema.parse({}), removeTokenHeader: false, realm: 'entra-authz', stripHeaders: stripHeadersSchema.parse({}) }),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type Rule = z.output<typeof ruleSchema>;
export type Requirement = z.output<typeof requirementSchema>;
export type RequirementAlternative = z.output<typeof alternativeSchema>;
export type Match = z.output<typeof matchSchema>;
export type PathMatch = z.output<typeof pathMatchSchema>;
export type EntraConfig = Config['entra'];
export type GraphConfig = NonNullable<EntraConfig['graph']>;
