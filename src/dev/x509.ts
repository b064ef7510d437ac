import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';

/**
 * A minimal DER encoder for one thing only: a self-signed X.509 v3 certificate around an RSA key,
 * the way Entra publishes its signing keys (`x5c` holds such a certificate and `x5t` is the
 * base64url SHA-1 thumbprint of its DER). Hand-rolled so that dev mode needs no runtime dependency
 * beyond node:crypto; node's `X509Certificate` parses the result, and the tests check that.
 *
 * Not a general ASN.1 library: lengths, integers and times are encoded for exactly the values used
 * here.
 */

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
const nullValue = Buffer.from([0x05, 0x00]);

/** A non-negative INTEGER from big-endian magnitude bytes (minimal, with a sign pad when needed). */
function integer(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  let body = magnitude.subarray(start);
  if ((body[0] ?? 0) & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
  return tlv(0x02, body);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = parts;
  const out: number[] = [a * 40 + b];
  for (const p of rest) {
    const chunk: number[] = [];
    let v = p;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] = (chunk[i] ?? 0) | 0x80;
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // 2025-01-02T03:04:05.678Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, ''); // 20250102030405
  const year = d.getUTCFullYear();
  return year < 2050
    ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'))
    : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

function commonName(cn: string): Buffer {
  return seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));
}

const SHA256_WITH_RSA = seq(oid('1.2.840.113549.1.1.11'), nullValue);

export interface SelfSignedCertOptions {
  /** DER SubjectPublicKeyInfo of the key the certificate is about. */
  spkiDer: Buffer;
  /** The matching private key; it signs the certificate (self-signed). */
  privateKey: KeyObject;
  /** Subject and issuer CN. Entra's signing certificates use `accounts.accesscontrol.windows.net`. */
  commonName: string;
  notBefore: Date;
  notAfter: Date;
}

/** Builds a DER-encoded, self-signed X.509 v3 certificate (sha256WithRSAEncryption). */
export function selfSignedCertificate(o: SelfSignedCertOptions): Buffer {
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01; // positive and never a redundant leading zero
  const name = commonName(o.commonName);
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    SHA256_WITH_RSA,
    name,
    seq(time(o.notBefore), time(o.notAfter)),
    name,
    o.spkiDer,
  );
  const signature = sign('sha256', tbs, o.privateKey);
  return seq(tbs, SHA256_WITH_RSA, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
}

/** `x5t`: base64url SHA-1 of the certificate's DER (RFC 7515 §4.1.7), what Entra publishes. */
export function x5tOf(certDer: Buffer): string {
  return createHash('sha1').update(certDer).digest('base64url');
}
