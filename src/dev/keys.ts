import { generateKeyPair as generateKeyPairCallback, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { TokenVersion } from '../authn/entra/urls.js';
import type { EmulatorKeyPair } from './types.js';
import { selfSignedCertificate, x5tOf } from './x509.js';

/**
 * The emulator's signing keys, as Entra publishes them: RSA-2048 keys in self-signed certificates
 * whose SHA-1 thumbprint is both `x5t` and `kid`; several published at once, one current signer,
 * retired keys that can still sign, and one key that is never published.
 */

export interface SigningKey {
  readonly kid: string;
  readonly x5t: string;
  readonly privateKey: KeyObject;
  readonly n: string;
  readonly e: string;
  readonly spkiPem: string;
  readonly certDer: Buffer;
}

const CERT_COMMON_NAME = 'accounts.accesscontrol.windows.net';
const CERT_VALIDITY_MS = 5 * 365 * 24 * 3600 * 1000;

const generateRsaKeyPair = promisify(generateKeyPairCallback);

/** A fresh RSA-2048 key pair (what the emulator does when no pre-made pair is left). */
export async function generateEmulatorKeyPair(): Promise<EmulatorKeyPair> {
  return generateRsaKeyPair('rsa', { modulusLength: 2048 });
}

function signingKey(pair: EmulatorKeyPair, nowMs: number): SigningKey {
  const jwk = pair.publicKey.export({ format: 'jwk' });
  if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') throw new TypeError('emulator key pairs must be RSA');
  const certDer = selfSignedCertificate({
    spkiDer: pair.publicKey.export({ format: 'der', type: 'spki' }),
    privateKey: pair.privateKey,
    commonName: CERT_COMMON_NAME,
    notBefore: new Date(nowMs),
    notAfter: new Date(nowMs + CERT_VALIDITY_MS),
  });
  const x5t = x5tOf(certDer);
  const spkiPem = pair.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  return { kid: x5t, x5t, privateKey: pair.privateKey, n: jwk.n, e: jwk.e, spkiPem, certDer };
}

export interface KeyRing {
  /** Every key ever made, published or not, by kid. */
  get(kid: string): SigningKey | undefined;
  current(): SigningKey;
  publishedKids(): readonly string[];
  /** Adds a published key that becomes the current signer; `retireOld` unpublishes the others. */
  rotate(retireOld: boolean): Promise<SigningKey>;
  /** The one key that is never published (made on first use). */
  unpublished(): Promise<SigningKey>;
  /** The key of an app with claims mapping (made on first use), published only at `?appid=`. */
  appKey(appId: string): Promise<SigningKey>;
  /** The JWKS document of one token version (default: the published keys); v2 keys carry the `issuer` template. */
  jwks(version: TokenVersion, v2IssuerTemplate: string, only?: SigningKey): { keys: Record<string, unknown>[] };
}

export async function createKeyRing(opts: { initialKeys: number; keyPairs: readonly EmulatorKeyPair[]; now: () => number }): Promise<KeyRing> {
  const keys = new Map<string, SigningKey>();
  let published: string[] = [];
  let currentKid = '';
  let unpublished: Promise<SigningKey> | undefined;
  const appKeys = new Map<string, Promise<SigningKey>>();
  let nextPair = 0;

  const make = async (): Promise<SigningKey> => {
    const pair = opts.keyPairs[nextPair++] ?? (await generateEmulatorKeyPair());
    const key = signingKey(pair, opts.now());
    keys.set(key.kid, key);
    return key;
  };

  for (let i = 0; i < opts.initialKeys; i++) published.push((await make()).kid);
  currentKid = published[0] ?? '';

  return {
    get: (kid) => keys.get(kid),
    current() {
      const key = keys.get(currentKid);
      if (!key) throw new Error('emulator has no current key');
      return key;
    },
    publishedKids: () => Object.freeze([...published]),
    async rotate(retireOld) {
      const key = await make();
      published = retireOld ? [key.kid] : [...published, key.kid];
      currentKid = key.kid;
      return key;
    },
    unpublished() {
      unpublished ??= make();
      return unpublished;
    },
    appKey(appId) {
      let key = appKeys.get(appId);
      if (key === undefined) {
        key = make();
        appKeys.set(appId, key);
      }
      return key;
    },
    jwks(version, v2IssuerTemplate, only) {
      return {
        keys: (only ? [only.kid] : published).map((kid) => {
          const k = keys.get(kid);
          if (!k) throw new Error(`published kid ${kid} has no key`);
          // No `alg`: Entra omits it, so verifiers must pin RS256 themselves.
          const jwk: Record<string, unknown> = { kty: 'RSA', use: 'sig', kid: k.kid, x5t: k.x5t, n: k.n, e: k.e, x5c: [k.certDer.toString('base64')] };
          if (version === '2.0') jwk.issuer = v2IssuerTemplate;
          return jwk;
        }),
      };
    },
  };
}
