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
