/**
 * TLS for the server's own gRPC listener (Envoy → entra-authz): a server certificate, optionally
 * required client certificates with an allow-list of client identities, and files that are
 * reloaded when they change on disk (cert-manager, SPIRE helper) without a restart.
 *
 * Built on grpc-js 1.14's experimental certificate-provider credentials: grpc-js calls
 * `setSecureContext` on its HTTP/2 server whenever the provider reports new material, so new
 * handshakes use the new certificate while established connections — and their in-flight checks —
 * carry on untouched. grpc-js's own FileWatcherCertificateProvider is not used because it forwards
 * whatever it reads: a certificate read before its new key (cert-manager writes them one after the
 * other) makes `setSecureContext` fail, and grpc-js then drops every new connection until the next
 * refresh. This provider validates a complete, matching set before handing it over and otherwise
 * keeps serving the last good one.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile as fsReadFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { TlsListenerConfig } from '../config/schema-mtls.js';
import { parseCertificateDer, parseTrustAnchors } from '../authn/mtls/certificate.js';
import { compileIdentityPattern, parseSpiffeId, type IdentityMatcher, type MatchableIdentity } from '../authn/mtls/spiffe.js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;
type CaListener = grpc.experimental.CaCertificateUpdateListener;

/** What is being served, for logs: never key material. */
export interface TlsCertificateSummary {
  readonly subject: string;
  readonly notAfter: string;
  readonly fingerprintSha256: string;
}

export interface TlsReloadEvent {
  /** Which parts changed. */
  readonly changed: readonly ('certificate' | 'ca')[];
  readonly certificate: TlsCertificateSummary;
}

export interface TlsListenerOptions {
  /** Overrides `reloadIntervalSeconds` (tests use a few milliseconds). */
  readonly reloadIntervalMs?: number;
  /** Called after new material is handed to the listener. */
  readonly onReload?: (event: TlsReloadEvent) => void;
  /** Called when changed files cannot be used; the last good material keeps being served. Once per distinct failure. */
  readonly onError?: (problem: string) => void;
  /** Called when a client is refused by the allow-list (audit/log). */
  readonly onClientRefused?: (detail: string) => void;
  /** File reader (tests). */
  readonly readFile?: (path: string) => Promise<Buffer>;
}

export interface TlsListener {
  /** Pass to `server.bindAsync(address, credentials, cb)`. */
  readonly credentials: grpc.ServerCredentials;
  /** The certificate currently handed to the listener. */
  current(): TlsCertificateSummary;
  /** Checks the files now (e.g. on SIGHUP); resolves true when new material was applied. */
  reload(): Promise<boolean>;
  /** Stops watching the files. Connections are unaffected. */
  close(): void;
}

interface Material {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}

/**
 * Checks that a certificate / key / CA set is usable: the key parses and matches the certificate
 * (the first in the chain), the CA bundle holds CA certificates. Pure; never throws.
 */
export function validateTlsMaterial(m: Material): { ok: true; summary: TlsCertificateSummary } | { ok: false; problem: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(m.cert);
  } catch {
    return { ok: false, problem: 'the certificate file holds no parsable PEM certificate' };
  }
  try {
    const key = createPrivateKey(m.key);
    if (!cert.checkPrivateKey(key)) return { ok: false, problem: 'the private key does not match the certificate' };
  } catch {
    return { ok: false, problem: 'the key file holds no parsable (unencrypted) PEM private key' };
  }
  if (m.ca !== undefined) {
    const anchors = parseTrustAnchors(m.ca.toString('utf8'));
    if (!anchors.ok) return { ok: false, problem: `CA file: ${anchors.problems.join('; ')}` };
  }
  return {
    ok: true,
    summary: {
      subject: cert.subject.split('\n').reverse().join(','),
      notAfter: cert.validTo,
      fingerprintSha256: createHash('sha256').update(cert.raw).digest('hex'),
    },
  };
}

const sameBytes = (a: Buffer | undefined, b: Buffer | undefined): boolean =>
  a === undefined || b === undefined ? a === b : a.equals(b);

/** The listener's certificate, key and CA bundle as last read and validated. */
export type TlsMaterial = Material;

export type TlsMaterialListener = (material: TlsMaterial, changed: readonly ('certificate' | 'ca')[]) => void;

/** The certificate files of a listener, re-read on a timer and on demand; transport-neutral. */
export interface TlsMaterialWatcher {
  /** The last good material. */
  material(): TlsMaterial;
  current(): TlsCertificateSummary;
  /** Called with each new, validated material set. */
  onChange(listener: TlsMaterialListener): void;
  /** Checks the files now (e.g. on SIGHUP); resolves true when new material was applied. */
  reload(): Promise<boolean>;
  /** Stops watching the files. */
  close(): void;
}

/**
 * Reads and validates the files and keeps re-reading them. Rejects when the initial files are
 * unusable (the server must not start without a certificate); later failures only keep the last
 * good material and report through `onError`.
 */
export async function watchTlsMaterial(config: TlsListenerConfig, options: Omit<TlsListenerOptions, 'onClientRefused'> = {}): Promise<TlsMaterialWatcher> {
  const read = options.readFile ?? ((path: string) => fsReadFile(path));
  const readAll = async (): Promise<Material> => {
    const [cert, key, ca] = await Promise.all([
      read(config.certFile),
      read(config.keyFile),
      config.caFile === undefined ? Promise.resolve(undefined) : read(config.caFile),
    ]);
    return { cert, key, ca };
  };

  let material: Material;
  try {
    material = await readAll();
  } catch (err) {
    throw new Error(`TLS listener: cannot read the certificate files: ${(err as Error).message}`);
  }
  const initial = validateTlsMaterial(material);
  if (!initial.ok) throw new Error(`TLS listener: ${initial.problem}`);
  let summary = initial.summary;
  const listeners: TlsMaterialListener[] = [];

  let lastProblem: string | undefined;
  let inFlight: Promise<boolean> | undefined;
  const reloadOnce = async (): Promise<boolean> => {
    let next: Material;
    try {
      next = await readAll();
    } catch (err) {
      report(`cannot read the certificate files: ${(err as Error).message}`);
      return false;
    }
    const identityChanged = !sameBytes(next.cert, material.cert) || !sameBytes(next.key, material.key);
    const caChanged = !sameBytes(next.ca, material.ca);
    if (!identityChanged && !caChanged) {
      lastProblem = undefined;
      return false;
    }
    const checked = validateTlsMaterial(next);
    if (!checked.ok) {
      report(checked.problem);
      return false;
    }
    lastProblem = undefined;
    material = next;
    summary = checked.summary;
    const changed: ('certificate' | 'ca')[] = [];
    if (identityChanged) changed.push('certificate');
    if (caChanged) changed.push('ca');
    for (const l of listeners) l(next, changed);
    try {
      options.onReload?.({ changed, certificate: summary });
    } catch {
      // A logging hook must not break reloads.
    }
    return true;
  };
  const report = (problem: string): void => {
    if (problem === lastProblem) return;
    lastProblem = problem;
    try {
      options.onError?.(problem);
    } catch {
      // Ignore hook failures.
    }
  };
  const reload = (): Promise<boolean> => {
    inFlight ??= reloadOnce()
      .catch((err: unknown) => {
        // A listener that throws must not become an unhandled rejection of the timer.
        report(`applying the new certificate failed: ${(err as Error)?.message ?? String(err)}`);
        return false;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  const intervalMs = options.reloadIntervalMs ?? config.reloadIntervalSeconds * 1000;
  const timer = setInterval(() => void reload(), intervalMs);
  timer.unref();

  return {
    material: () => material,
    current: () => summary,
    onChange: (listener) => void listeners.push(listener),
    reload,
    close: () => clearInterval(timer),
  };
}

/**
 * Reads and validates the files, then builds the listener's credentials. Rejects when the initial
 * files are unusable (the server must not start without a certificate); later failures only keep
 * the last good material and report through `onError`.
 */
export async function createTlsListener(config: TlsListenerConfig, options: TlsListenerOptions = {}): Promise<TlsListener> {
  const files = await watchTlsMaterial(config, options);
  const identityListeners = new Set<IdentityListener>();
  const caListeners = new Set<CaListener>();
  const identityUpdate = () => ({ certificate: files.material().cert, privateKey: files.material().key });

  // grpc-js registers its listeners when the server binds, before it accepts connections, and
  // builds the secure context from the first updates: deliver them on the next tick, as grpc-js's
  // own providers do (a synchronous call would reach grpc-js before its watcher is registered).
  const provider: CertificateProvider = {
    addIdentityCertificateListener(listener) {
      identityListeners.add(listener);
      process.nextTick(() => identityListeners.has(listener) && listener(identityUpdate()));
    },
    removeIdentityCertificateListener(listener) {
      identityListeners.delete(listener);
    },
    addCaCertificateListener(listener) {
      caListeners.add(listener);
      process.nextTick(() => {
        const ca = files.material().ca;
        if (caListeners.has(listener) && ca !== undefined) listener({ caCertificate: ca });
      });
    },
    removeCaCertificateListener(listener) {
      caListeners.delete(listener);
    },
  };
  // The CA first: a new client CA and a new server certificate are independent, and grpc-js
  // recomputes the whole context from the latest of both on each update.
  files.onChange((next, changed) => {
    if (changed.includes('ca') && next.ca !== undefined) for (const l of caListeners) l({ caCertificate: next.ca });
    if (changed.includes('certificate')) for (const l of identityListeners) l(identityUpdate());
  });

  // NB: grpc-js 1.14's typings name the first parameter `caCertificateProvider`, but the
  // implementation (and grpc-js-xds, its main caller) treats the first as the identity provider
  // and the second, nullable one as the CA provider. The CA provider's presence is what makes
  // the server request client certificates; `requireClientCert` makes it reject connections
  // without a valid one.
  let credentials: grpc.ServerCredentials = grpc.experimental.createCertificateProviderServerCredentials(
    provider,
    config.caFile === undefined ? null : provider,
    config.requireClientCert,
  );
  if (config.allowedClients !== undefined) {
    credentials = grpc.experimental.createServerCredentialsWithInterceptors(credentials, [
      createClientAllowListInterceptor(config.allowedClients, { onRefused: options.onClientRefused }),
    ]);
  }

  return {
    credentials,
    current: files.current,
    reload: files.reload,
    close: files.close,
  };
}

/** The identity a verified client certificate (DER) carries, or undefined when unparsable. */
export function certificateIdentity(raw: Uint8Array): (MatchableIdentity & { principal: string }) | undefined {
  const parsed = parseCertificateDer(raw);
  if (!parsed.ok) return undefined;
  const { uriSans, dnsSans, subject } = parsed.certificate;
  const spiffe = uriSans.filter((u) => u.startsWith('spiffe://'));
  const spiffeId = spiffe.length === 1 && parseSpiffeId(spiffe[0] as string) ? spiffe[0] : undefined;
  return { spiffeId, uriSans, dnsSans, principal: uriSans[0] ?? dnsSans[0] ?? subject };
}

/** The identity a verified TLS client presented on this call's connection, if any. */
export function clientIdentityOf(call: Pick<grpc.ServerInterceptingCallInterface, 'getAuthContext'>): (MatchableIdentity & { principal: string }) | undefined {
  // grpc-js reports the peer certificate only when the handshake verified it (socket.authorized).
  const raw = call.getAuthContext().sslPeerCertificate?.raw;
  return raw === undefined ? undefined : certificateIdentity(raw);
}

/** Why a TLS client is refused: no verified certificate, or an identity not on the allow-list. */
export interface ClientRefusal {
  readonly kind: 'unauthenticated' | 'forbidden';
  readonly detail: string;
}

/**
 * The allow-list of TLS client identities, for any transport: given the verified peer certificate
 * (or none), the refusal or undefined. Decisions are cached per certificate fingerprint (proxies
 * send many checks on one connection).
 */
export function createClientAllowList(allowed: readonly string[]): (cert: { raw: Uint8Array; fingerprint256: string } | undefined) => ClientRefusal | undefined {
  const matchers: IdentityMatcher[] = allowed.map((entry) => {
    const compiled = compileIdentityPattern(entry);
    if (!compiled.ok) throw new Error(`allowedClients: ${entry}: ${compiled.problem}`);
    return compiled.value;
  });
  const decisions = new Map<string, { allowed: boolean; principal: string }>();
  const MAX = 1024;
  return (cert) => {
    if (cert === undefined) return { kind: 'unauthenticated', detail: 'a verified client certificate is required' };
    let decision = decisions.get(cert.fingerprint256);
    if (decision === undefined) {
      const identity = certificateIdentity(cert.raw);
      decision = {
        allowed: identity !== undefined && matchers.some((m) => m(identity)),
        principal: identity?.principal ?? '(unparsable certificate)',
      };
      if (decisions.size >= MAX) decisions.clear();
      decisions.set(cert.fingerprint256, decision);
    }
    return decision.allowed ? undefined : { kind: 'forbidden', detail: `client ${decision.principal} is not allowed` };
  };
}

/**
 * A server interceptor refusing calls whose TLS client is not on the allow-list: UNAUTHENTICATED
 * without a verified client certificate, PERMISSION_DENIED for an identity not listed.
 */
export function createClientAllowListInterceptor(
  allowed: readonly string[],
  options: { onRefused?: ((detail: string) => void) | undefined } = {},
): grpc.ServerInterceptor {
  const check = createClientAllowList(allowed);
  const decide = (call: grpc.ServerInterceptingCallInterface): { code: grpc.status; detail: string } | undefined => {
    const peerCert = call.getAuthContext().sslPeerCertificate;
    const refusal = check(peerCert?.raw === undefined ? undefined : { raw: peerCert.raw, fingerprint256: peerCert.fingerprint256 });
    if (refusal === undefined) return undefined;
    return { code: refusal.kind === 'unauthenticated' ? grpc.status.UNAUTHENTICATED : grpc.status.PERMISSION_DENIED, detail: refusal.detail };
  };

  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            let refusal: { code: grpc.status; detail: string } | undefined;
            try {
              refusal = decide(call);
            } catch {
              refusal = { code: grpc.status.UNAUTHENTICATED, detail: 'the client certificate could not be checked' };
            }
            if (refusal === undefined) {
              mdNext(metadata);
              return;
            }
            try {
              options.onRefused?.(refusal.detail);
            } catch {
              // Ignore hook failures.
            }
            call.sendStatus({ code: refusal.code, details: refusal.code === grpc.status.UNAUTHENTICATED ? 'client certificate required' : 'client not allowed' });
          },
        });
      },
    });
}
