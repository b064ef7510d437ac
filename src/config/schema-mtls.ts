import { z } from 'zod';
import { checkSpiffeId, compileDnsPattern, compileIdentityPattern, compileSpiffePattern } from '../authn/mtls/spiffe.js';

/**
 * Configuration of the mTLS features: where the caller's peer identity comes from, what a rule may
 * require of it, and the server's own TLS listener. Plugged into the main schema by the integrator
 * (suggested keys: `peer` at the top level, `require.peer` in rules, `server.tls`).
 * `docs/mtls.md` documents every field with an example. Every object is strict.
 */

/** A string validated by a function returning a problem (or undefined). */
const checked = (check: (value: string) => string | undefined) =>
  z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const problem = check(value);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    });

const problemOf = (r: { ok: true } | { ok: false; problem: string }): string | undefined => (r.ok ? undefined : r.problem);

const absoluteUri = z
  .string()
  .min(1)
  .max(2048)
  .regex(/^[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+$/, 'expected an absolute URI without spaces, e.g. spiffe://cluster.local/ns/edge/sa/front-proxy');

const spiffeId = checked(checkSpiffeId);
const spiffePattern = checked((p) => problemOf(compileSpiffePattern(p)));
const dnsPattern = checked((p) => problemOf(compileDnsPattern(p))).transform((p) => p.toLowerCase());
const identityPattern = checked((p) => problemOf(compileIdentityPattern(p)));

export const xfccSchema = z
  .strictObject({
    /** Use `x-forwarded-client-cert` at all. Off by default: a client can send its own header. */
    trusted: z.boolean().default(false),
    /** `By` URIs (the URI SAN of each proxy allowed to vouch for a client), exact match. */
    proxies: z.array(absoluteUri).max(64).default([]),
  })
  .superRefine((v, ctx) => {
    if (v.trusted && v.proxies.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['proxies'], message: 'trusting XFCC needs at least one proxy By URI' });
    }
  });

export const peerSourceSchema = z.strictObject({
  /**
   * PEM bundle of CA certificates. When set, a peer identity is accepted only if it comes with a
   * certificate (Envoy's `include_peer_certificate: true`, or XFCC `Cert`) issued by one of them.
   */
  caBundleFile: z.string().min(1).optional(),
  xfcc: xfccSchema.default({ trusted: false, proxies: [] }),
});

export const peerRequirementSchema = z
  .strictObject({
    /** Exact SPIFFE IDs, any of which satisfies the requirement. */
    spiffeIds: z.array(spiffeId).min(1).max(1000).optional(),
    /** SPIFFE ID patterns: literal trust domain, `*` = one path segment, trailing `**` = one or more. */
    spiffePatterns: z.array(spiffePattern).min(1).max(1000).optional(),
    /** DNS SANs: exact (case-insensitive) or `*.domain.tld` (exactly one extra label). */
    dnsSans: z.array(dnsPattern).min(1).max(1000).optional(),
    /** Only certificate-bound tokens (RFC 8705 `cnf.x5t#S256`) are accepted. */
    requireBoundToken: z.boolean().default(false),
    /** The peer identity alone authenticates the caller: no token is needed (one that is sent is still verified). */
    peerOnly: z.boolean().default(false),
  })
  .superRefine((v, ctx) => {
    const constrains = v.spiffeIds !== undefined || v.spiffePatterns !== undefined || v.dnsSans !== undefined;
    if (v.peerOnly && !constrains) {
      ctx.addIssue({ code: 'custom', path: ['peerOnly'], message: 'peerOnly needs spiffeIds, spiffePatterns or dnsSans' });
    }
    if (v.peerOnly && v.requireBoundToken) {
      ctx.addIssue({ code: 'custom', path: ['requireBoundToken'], message: 'a peerOnly requirement has no token to bind' });
    }
    if (!constrains && !v.requireBoundToken) {
      ctx.addIssue({ code: 'custom', message: 'give spiffeIds, spiffePatterns, dnsSans or requireBoundToken' });
    }
  });

export const tlsListenerSchema = z
  .strictObject({
    /** PEM certificate (chain) the listener presents; reloaded when it changes on disk. */
    certFile: z.string().min(1),
    /** PEM private key matching certFile. */
    keyFile: z.string().min(1),
    /** PEM CA bundle that client certificates (Envoy's) must chain to. */
    caFile: z.string().min(1).optional(),
    /** Refuse TLS connections without a valid client certificate. */
    requireClientCert: z.boolean().default(false),
    /** Client identities allowed to call: SPIFFE IDs or patterns, other URI SANs, DNS names (`*.domain` allowed). */
    allowedClients: z.array(identityPattern).min(1).max(1000).optional(),
    /** How often the files are checked for changes. */
    reloadIntervalSeconds: z.number().min(1).max(3600).default(10),
  })
  .superRefine((v, ctx) => {
    if (v.requireClientCert && v.caFile === undefined) {
      ctx.addIssue({ code: 'custom', path: ['caFile'], message: 'requireClientCert needs caFile to verify client certificates' });
    }
    if (v.allowedClients !== undefined && !v.requireClientCert) {
      ctx.addIssue({ code: 'custom', path: ['requireClientCert'], message: 'allowedClients needs requireClientCert: true' });
    }
  });

export type PeerSourceConfig = z.output<typeof peerSourceSchema>;
export type PeerSourceConfigInput = z.input<typeof peerSourceSchema>;
export type XfccConfig = z.output<typeof xfccSchema>;
export type PeerRequirement = z.output<typeof peerRequirementSchema>;
export type PeerRequirementInput = z.input<typeof peerRequirementSchema>;
export type TlsListenerConfig = z.output<typeof tlsListenerSchema>;
export type TlsListenerConfigInput = z.input<typeof tlsListenerSchema>;
