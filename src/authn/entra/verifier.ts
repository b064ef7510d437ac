/**
 * Verification of Entra ID access tokens: the rules Microsoft's own libraries
 * (Microsoft.IdentityModel, Microsoft.Identity.Web) apply, in a fixed order, each failure mapped to
 * one stable reason code.
 *
 * Hot path: one regex over the token, one JSON parse per segment, a key lookup in memory (keys are
 * imported by jose when a key set loads, and turned into node:crypto `KeyObject`s once per key),
 * one synchronous RS256 verification with node:crypto — several times faster than WebCrypto's
 * asynchronous verify, which queues every call on the thread pool. `verify` never throws.
 */
import { KeyObject, verify as verifySignature } from 'node:crypto';
import type { CryptoKey } from 'jose';
import type { EntraConfig } from '../../config/schema.js';
import type { TokenIdentity } from '../../core/identity.js';
import type { ReasonCode } from '../../core/reasons.js';
import { tokenHash } from '../../core/token-hash.js';
import { createStringPool, isRecord, NO_STRINGS } from '../../core/values.js';
import type { TokenVerifier, VerifyResult } from '../../core/verifier.js';
import { signingKeysAppIdFor } from './app-keys.js';
import { readMembershipClaims } from './claims.js';
import { TENANT_ID_TEMPLATE, type KeyStore, type TokenVersion } from './keystore.js';

export type { TokenVerifier, VerifyResult } from '../../core/verifier.js';

export interface TokenVerifierDeps {
  readonly config: EntraConfig;
  readonly keys: Pick<KeyStore, 'resolveKey' | 'expectedIssuer'>;
  /** Wall clock in milliseconds. */
  readonly now: () => number;
}

/**
 * Three base64url segments. The signature may be empty so that an unsigned (`alg: none`) token is
 * reported as a forbidden algorithm rather than as a malformed token. Linear-time: no segment can
 * contain the separator.
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * RFC 7515 base64url: no padding (the regex above already refuses `=`, `+`, `/`), no impossible
 * length, and zero bits where the last character carries fewer than six. Otherwise every token
 * would have several spellings, each its own cache entry and audit hash.
 */
function isCanonicalBase64url(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = BASE64URL_ALPHABET.indexOf(segment[segment.length - 1] ?? '');
  const unusedBits = rest === 2 ? 0b1111 : 0b11;
  return (last & unusedBits) === 0;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Strict UTF-8: a payload with invalid byte sequences is malformed, not silently repaired. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The only algorithm accepted. Entra signs access tokens with RS256 and its JWKS keys carry no
 * `alg`, so the algorithm is pinned here: `none`, HMAC (e.g. HS256 keyed with the public key's
 * bytes), PS*, ES* are all refused before any key is touched.
 */
const ALGORITHM = 'RS256';

/** RS256 (RSASSA-PKCS1-v1_5 with SHA-256); a signature that cannot even be checked does not verify. */
function rs256Verifies(signingInput: string, signatureSegment: string, key: KeyObject): boolean {
  try {
    return verifySignature('RSA-SHA256', Buffer.from(signingInput, 'latin1'), key, Buffer.from(signatureSegment, 'base64url'));
  } catch {
    return false;
  }
}

type Claims = Record<string, unknown>;

/** Longest access-token lifetime Entra can be configured to issue (one day). */
const MAX_LIFETIME_SECONDS = 24 * 3600;
/** Longest lifetime of a continuous access evaluation (CAE) token. */
const CAE_MAX_LIFETIME_SECONDS = 28 * 3600;
/** Distinct claim values held once across cached identities; the pool starts over beyond this. */
const SHARED_CLAIM_VALUES = 4096;

/** A deny decided while reading the header and choosing the key. */
class Deny extends Error {
  constructor(
    readonly reason: ReasonCode,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/** What the key-resolution step learnt, for the checks after the signature. */
interface Selected {
  readonly claims: Claims;
  readonly tid: string;
  readonly tenant: string;
  readonly version: TokenVersion;
  readonly keyId: string;
  readonly expectedIssuer: string;
  readonly keyIssuer: string | undefined;
  /** Azure AD B2C: the user flow the token names, lower-case. */
  readonly userFlow: string | undefined;
  /** The app whose own keys verified the token (claims mapping), if any. */
  readonly appId: string | undefined;
}

/** Attacker-controlled values in audit details: quoted (escaped) and truncated. */
function q(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return JSON.stringify(s.length > 128 ? `${s.slice(0, 128)}…` : s);
}

function deny(reason: ReasonCode, detail: string): VerifyResult {
  return { ok: false, reason, detail };
}

/** A base64url segment holding a JSON object, or undefined. */
function jsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(UTF8.decode(Buffer.from(segment, 'base64url')));
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function createTokenVerifier(deps: TokenVerifierDeps): TokenVerifier {
  const { config, keys, now } = deps;
  // Identities outlive the check when the verified-token cache keeps them: claim values that
  // repeat across tokens (caller, client, tenant, audience, roles) are held once, not per token.
  const shared = createStringPool(SHARED_CLAIM_VALUES);
  const tenants = new Set(config.tenants.map((t) => t.toLowerCase()));
  const versions = new Set<TokenVersion>(config.tokenVersions);
  const audiences = new Set(config.audiences);
  const skew = config.clockSkewSeconds;
  const maxBytes = config.maxTokenBytes;
  const userFlows = config.b2c === undefined ? undefined : new Set(config.b2c.userFlows.map((f) => f.toLowerCase()));

  /**
   * Token version. The issuer form decides when it equals the issuer a tenant's metadata published
   * for a version; otherwise the `ver` claim; otherwise 2.0. Picking a version only picks the key
   * set and expected issuer: the issuer is still matched exactly after the signature, so a token
   * that lies about its version fails there.
   */
  function versionOf(tenant: string, iss: string, ver: unknown, appId: string | undefined): TokenVersion {
    if (iss === keys.expectedIssuer(tenant, '1.0', { appId })) return '1.0';
    if (iss === keys.expectedIssuer(tenant, '2.0', { appId })) return '2.0';
    if (ver === '1.0' || ver === '2.0') return ver;
    return '2.0';
  }

  /** node:crypto form of each key, converted on first use. */
  const keyObjects = new WeakMap<CryptoKey, KeyObject>();
  const keyObjectOf = (key: CryptoKey): KeyObject => {
    let object = keyObjects.get(key);
    if (object === undefined) keyObjects.set(key, (object = KeyObject.from(key)));
    return object;
  };

  /**
   * Before the signature is verified: header rules, the unverified claims needed to choose a key
   * set, and the key itself. Nothing read here is trusted until the signature checks out.
   */
  async function selectKey(header: Record<string, unknown>, payloadSegment: string): Promise<Selected & { readonly key: CryptoKey }> {
    if (header.alg !== ALGORITHM) throw new Deny('token_alg_not_allowed', `alg ${q(header.alg)} is not RS256`);
    // Tokens with a `nonce` header (Microsoft Graph's) are hashed before signing and cannot be
    // verified by design; Microsoft's libraries refuse them, and so do we.
    if ('nonce' in header) throw new Deny('token_nonce_header', 'token header carries a nonce');
    // No extension is understood, so a critical one can never be honoured.
    if ('crit' in header) throw new Deny('token_malformed', 'token header carries crit');
    const { kid, x5t } = header;
    if (kid !== undefined && (typeof kid !== 'string' || kid === '')) throw new Deny('token_malformed', 'kid is not a string');
    if (x5t !== undefined && (typeof x5t !== 'string' || x5t === '')) throw new Deny('token_malformed', 'x5t is not a string');

    const claims = jsonObject(payloadSegment);
    if (claims === undefined) throw new Deny('token_malformed', 'payload is not a JSON object');

    // The unverified `aud` only picks the key set (an app's own keys under claims mapping); the
    // audience is matched exactly after the signature.
    const appId = signingKeysAppIdFor(config, acceptedAudience(claims.aud));
    const { tid, tenant, version, userFlow } = userFlows === undefined ? tenantOf(claims, appId) : b2cUserFlowOf(claims, userFlows);
    if (typeof claims.iss !== 'string') throw new Deny('token_claims_invalid', 'iss is missing');

    const resolution = await keys.resolveKey(tenant, version, { kid, x5t }, { userFlow, appId });
    if (!resolution.ok) throw new Deny(resolution.reason, resolution.detail);
    return {
      claims,
      tid,
      tenant,
      version,
      key: resolution.key,
      keyId: resolution.keyId,
      expectedIssuer: resolution.expectedIssuer,
      keyIssuer: resolution.keyIssuer,
      userFlow,
      appId,
    };
  }

  /** The first accepted audience of an `aud` claim (string or array form), exact match. */
  function acceptedAudience(aud: unknown): string | undefined {
    if (typeof aud === 'string') return audiences.has(aud) ? aud : undefined;
    if (Array.isArray(aud)) return aud.find((a): a is string => typeof a === 'string' && audiences.has(a));
    return undefined;
  }

  /** Entra ID: the tenant is the token's `tid`, which must be allowed. */
  function tenantOf(claims: Claims, appId: string | undefined): { tid: string; tenant: string; version: TokenVersion; userFlow: undefined } {
    const tid = claims.tid;
    if (typeof tid !== 'string' || !GUID.test(tid)) throw new Deny('token_claims_invalid', `tid ${q(tid)} is not a GUID`);
    const tenant = tid.toLowerCase();
    if (!tenants.has(tenant)) throw new Deny('token_tenant_not_allowed', `tenant ${tenant} is not allowed`);
    const iss = claims.iss;
    if (typeof iss !== 'string') throw new Deny('token_claims_invalid', 'iss is missing');
    const version = versionOf(tenant, iss, claims.ver, appId);
    if (!versions.has(version)) throw new Deny('token_version_not_accepted', `token version ${version} is not accepted`);
    return { tid, tenant, version, userFlow: undefined };
  }

  /**
   * Azure AD B2C: tokens carry no `tid`; the one configured tenant issues them, and the user flow
   * named by `tfp` (or `acr`, by the older setting) picks the key set and exact issuer. B2C access
   * tokens say `ver: 1.0` yet come from the v2.0 endpoints, so the claims are read as v2.0.
   */
  function b2cUserFlowOf(claims: Claims, accepted: ReadonlySet<string>): { tid: string; tenant: string; version: TokenVersion; userFlow: string } {
    const named = claims.tfp ?? claims.acr;
    if (typeof named !== 'string' || named === '') throw new Deny('token_claims_invalid', 'neither tfp nor acr names a user flow');
    const userFlow = named.toLowerCase();
    if (!accepted.has(userFlow)) throw new Deny('token_user_flow_not_allowed', `user flow ${q(named)} is not accepted`);
    const tenant = [...tenants][0] ?? '';
    return { tid: tenant, tenant, version: '2.0', userFlow };
  }

  /** Checks on verified claims (steps 5–9); returns the identity or a deny. */
  function checkClaims(s: Selected, token: string): VerifyResult {
    const c = s.claims;
    const nowSec = Math.floor(now() / 1000);

    // Lifetime. `exp` is required; `nbf` optional. Same arithmetic as jose's clockTolerance.
    const { exp, nbf } = c;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return deny('token_claims_invalid', 'exp is missing or not a number');
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) return deny('token_claims_invalid', 'nbf is not a number');
    if (exp <= nowSec - skew) return deny('token_expired', `token expired at ${exp} (now ${nowSec}, skew ${skew}s)`);
    if (nbf !== undefined && nbf > nowSec + skew) return deny('token_not_yet_valid', `token valid from ${nbf} (now ${nowSec}, skew ${skew}s)`);

    // Issuer: the one exact string the tenant's metadata published for this version. No prefix,
    // substring or pattern matching: `https://login.microsoftonline.com/{tid}/v2.0.evil` and the
    // issuer of another tenant are different strings and fail here.
    const iss = c.iss as string;
    if (iss !== s.expectedIssuer) {
      const of = s.userFlow === undefined ? `tenant ${s.tenant} v${s.version}` : `B2C user flow ${s.userFlow}`;
      return deny('token_issuer_invalid', `iss ${q(iss)} is not the issuer of ${of}`);
    }
    // A JWKS key may be tied to one issuer (the `common` set mixes keys of other clouds and of
    // personal accounts). Its template, filled with the token's tid, must name the token's issuer.
    // As in Microsoft.IdentityModel, a v1 token may also be verified by a key tied to the same
    // tenant's v2 issuer (v1 and v2 sets share keys).
    if (s.keyIssuer !== undefined) {
      const effective = s.keyIssuer.split(TENANT_ID_TEMPLATE).join(s.tid);
      const sameTenantV2 = s.version === '1.0' && effective === keys.expectedIssuer(s.tenant, '2.0', { userFlow: s.userFlow, appId: s.appId });
      if (effective !== iss && !sameTenantV2) {
        return deny('token_issuer_invalid', `key ${q(s.keyId)} is tied to issuer ${q(effective)}, not ${q(iss)}`);
      }
    }

    // Audience: exact match, string or array form.
    const aud = c.aud;
    const audience = acceptedAudience(aud);
    if (audience === undefined) return deny('token_audience_invalid', `aud ${q(aud)} is not an accepted audience`);

    // Permissions.
    const { roles, scp } = c;
    if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === 'string'))) {
      return deny('token_claims_invalid', 'roles is not an array of strings');
    }
    if (scp !== undefined && typeof scp !== 'string') return deny('token_claims_invalid', 'scp is not a string');
    const roleList: readonly string[] = roles ?? [];
    const scopes = scp === undefined ? [] : scp.split(' ').filter((x) => x !== '');
    // Microsoft.Identity.Web's default: a token with no permission at all is what a tenant that
    // never consented to anything can still obtain for this API.
    if (roleList.length === 0 && scopes.length === 0 && !config.allowTokensWithoutPermissions) {
      return deny('token_no_permissions', 'token carries neither roles nor scp');
    }

    // Required identity claims.
    const { oid, sub, uti, idtyp, cnf } = c;
    if (typeof oid !== 'string' || oid === '') return deny('token_claims_invalid', 'oid is missing');
    if (typeof sub !== 'string' || sub === '') return deny('token_claims_invalid', 'sub is missing');
    const appId = s.version === '1.0' ? c.appid : c.azp;
    if (typeof appId !== 'string' || appId === '') {
      return deny('token_claims_invalid', `${s.version === '1.0' ? 'appid' : 'azp'} is missing`);
    }
    const acr = s.version === '1.0' ? c.appidacr : c.azpacr;
    // A certificate binding that cannot be read must not turn the token into an unbound one.
    let bound: string | undefined;
    if (cnf !== undefined) {
      if (!isRecord(cnf)) return deny('token_claims_invalid', 'cnf is not an object');
      const thumb = cnf['x5t#S256'];
      if (thumb !== undefined && (typeof thumb !== 'string' || thumb === '')) {
        return deny('token_claims_invalid', 'cnf x5t#S256 is not a string');
      }
      bound = thumb;
    }
    const membership = readMembershipClaims(c);
    if (!membership.ok) return deny('token_claims_invalid', membership.detail);
    const iat = c.iat;
    if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat))) return deny('token_claims_invalid', 'iat is not a number');
    // Entra issues at most 24 h tokens, and 28 h ones only to CAE clients of CAE-enabled resources.
    const maxLifetime = config.cae && membership.claims.claimsChallengeCapable ? CAE_MAX_LIFETIME_SECONDS : MAX_LIFETIME_SECONDS;
    const lifetime = exp - (iat ?? nbf ?? exp);
    if (lifetime > maxLifetime) return deny('token_lifetime_too_long', `token lives ${lifetime}s, over ${maxLifetime}s`);

    const identity: TokenIdentity = {
      version: s.version,
      type: idtyp === 'app' || (scp === undefined && oid === sub) ? 'app' : 'user',
      oid: shared(oid),
      sub: shared(sub),
      tid: shared(s.tid),
      appId: shared(appId),
      appAuth: typeof acr === 'string' ? shared(acr) : typeof acr === 'number' ? shared(String(acr)) : undefined,
      issuer: s.expectedIssuer, // equal to iss (checked above), and one string for every token of the tenant
      audience: shared(audience),
      roles: roleList.length === 0 ? NO_STRINGS : roleList.map(shared),
      scopes: scopes.length === 0 ? NO_STRINGS : scopes.map(shared),
      ...membership.claims,
      uti: typeof uti === 'string' ? uti : undefined,
      tokenHash: tokenHash(token),
      expiresAt: exp,
      boundCertificateThumbprint: bound,
    };
    return { ok: true, identity };
  }

  async function verify(token: string): Promise<VerifyResult> {
    try {
      if (typeof token !== 'string') return deny('token_malformed', 'token is not a string');
      // Size first, before anything else reads the token. UTF-8 is never shorter than UTF-16 units.
      if (token.length > maxBytes || (token.length * 3 > maxBytes && Buffer.byteLength(token, 'utf8') > maxBytes)) {
        return deny('token_too_large', `token exceeds ${maxBytes} bytes`);
      }
      if (!COMPACT_JWS.test(token)) return deny('token_malformed', 'token is not three base64url segments');
      if (!token.split('.').every(isCanonicalBase64url)) return deny('token_malformed', 'token segment is not canonical base64url');

      const first = token.indexOf('.');
      const second = token.indexOf('.', first + 1);
      const header = jsonObject(token.slice(0, first));
      if (header === undefined) return deny('token_malformed', 'invalid JWS: header is not a JSON object');
      let selected: Selected & { readonly key: CryptoKey };
      try {
        selected = await selectKey(header, token.slice(first + 1, second));
      } catch (err) {
        if (err instanceof Deny) return deny(err.reason, err.detail);
        throw err;
      }
      if (!rs256Verifies(token.slice(0, second), token.slice(second + 1), keyObjectOf(selected.key))) {
        return deny(
          'token_signature_invalid',
          `signature does not verify with key ${q(selected.keyId)} of tenant ${selected.tenant} v${selected.version}`,
        );
      }
      return checkClaims(selected, token);
    } catch (err) {
      return deny('internal_error', `verification failed: ${err instanceof Error ? err.name : 'unknown error'}`);
    }
  }

  return { verify };
}
