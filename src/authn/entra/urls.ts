/**
 * Every Entra ID URL the project builds or serves: tenant authority, OpenID metadata (v1 and v2),
 * JWKS, token and authorize endpoints, and the issuer of each token version. The key store, the
 * server's challenges, the offline `explain` fetch and the emulator's routes all use this one table,
 * so a path can never differ between the server and what it is tested against.
 */

export type TokenVersion = '1.0' | '2.0';

export type EntraEndpoint = 'metadata' | 'jwks' | 'token' | 'authorize';

/** Path of each endpoint below `{authority}/{tenant}/`, per token version. */
export const ENTRA_PATHS: Readonly<Record<EntraEndpoint, Readonly<Record<TokenVersion, string>>>> = {
  metadata: { '2.0': 'v2.0/.well-known/openid-configuration', '1.0': '.well-known/openid-configuration' },
  jwks: { '2.0': 'discovery/v2.0/keys', '1.0': 'discovery/keys' },
  token: { '2.0': 'oauth2/v2.0/token', '1.0': 'oauth2/token' },
  authorize: { '2.0': 'oauth2/v2.0/authorize', '1.0': 'oauth2/authorize' },
};

/** Placeholder Entra uses in issuer templates (metadata `issuer`, JWKS key `issuer`). */
export const TENANT_ID_TEMPLATE = '{tenantid}';

/** `{authority}/{tenant}`; a trailing slash on the authority is ignored. */
export function tenantAuthority(authority: string, tenant: string): string {
  return `${authority.replace(/\/+$/, '')}/${tenant}`;
}

export function entraUrl(authority: string, tenant: string, endpoint: EntraEndpoint, version: TokenVersion): string {
  return `${tenantAuthority(authority, tenant)}/${ENTRA_PATHS[endpoint][version]}`;
}

/** The endpoint and version a path below `/{tenant}/` names, if any (the emulator's router). */
export function matchEntraPath(rest: string): { endpoint: EntraEndpoint; version: TokenVersion } | undefined {
  for (const endpoint of Object.keys(ENTRA_PATHS) as EntraEndpoint[]) {
    for (const version of ['2.0', '1.0'] as const) {
      if (ENTRA_PATHS[endpoint][version] === rest) return { endpoint, version };
    }
  }
  return undefined;
}

/**
 * v1 issuers never name the authority host: `https://sts.windows.net/{tid}/` for the public cloud
 * (and for anything that is not a known sovereign cloud, the emulator included).
 */
function v1IssuerBase(authority: string): string {
  const host = new URL(authority).hostname;
  if (host === 'login.partner.microsoftonline.cn' || host === 'login.chinacloudapi.cn') return 'https://sts.chinacloudapi.cn';
  return 'https://sts.windows.net';
}

/** The issuer of a tenant's tokens of one version (`tenant` may be `{tenantid}` for a template). */
export function entraIssuer(authority: string, tenant: string, version: TokenVersion): string {
  return version === '2.0' ? `${tenantAuthority(authority, tenant)}/v2.0` : `${v1IssuerBase(authority)}/${tenant}/`;
}

/**
 * Azure AD B2C serves OpenID metadata and keys per user flow (policy), below the B2C tenant named
 * by its domain (`contoso.onmicrosoft.com`) or its tenant id.
 */
export type B2cEndpoint = 'metadata' | 'jwks' | 'authorize';

const B2C_PATHS: Readonly<Record<B2cEndpoint, string>> = {
  metadata: 'v2.0/.well-known/openid-configuration',
  jwks: 'discovery/v2.0/keys',
  authorize: 'oauth2/v2.0/authorize',
};

export function b2cUrl(authority: string, tenant: string, userFlow: string, endpoint: B2cEndpoint): string {
  return `${tenantAuthority(authority, tenant)}/${userFlow}/${B2C_PATHS[endpoint]}`;
}

/** The user flow and endpoint a path below `/{tenant}/` names, if any (the emulator's router). */
export function matchB2cPath(rest: string): { userFlow: string; endpoint: B2cEndpoint } | undefined {
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const tail = rest.slice(slash + 1);
  const endpoint = (Object.keys(B2C_PATHS) as B2cEndpoint[]).find((e) => B2C_PATHS[e] === tail);
  return endpoint === undefined ? undefined : { userFlow: rest.slice(0, slash), endpoint };
}

/**
 * The two issuer forms a B2C user flow can be set to emit (its "Issuer (iss) claim" setting):
 * `{authority}/{tenant id}/v2.0/` (recommended) or `{authority}/tfp/{tenant id}/{user flow}/v2.0/`.
 * Both end in a slash.
 */
export type B2cIssuerForm = 'tenant' | 'tfp';

export function b2cIssuer(authority: string, tenantId: string, userFlow: string, form: B2cIssuerForm): string {
  const base = authority.replace(/\/+$/, '');
  return form === 'tfp' ? `${base}/tfp/${tenantId}/${userFlow}/v2.0/` : `${base}/${tenantId}/v2.0/`;
}
