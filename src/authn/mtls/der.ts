/**
 * A minimal, bounds-checked DER reader for the few X.509 fields node:crypto does not expose in a
 * machine-readable form: the validity window and the Subject Alternative Name entries (Node's
 * `subjectAltName` is a display string with its own quoting rules). Input has already been
 * accepted by OpenSSL; this reader still checks every length against its enclosing element and
 * returns a problem string instead of throwing.
 */

export interface Tlv {
  readonly tag: number;
  /** Offset of the first content byte. */
  readonly start: number;
  /** Offset just past the last content byte. */
  readonly end: number;
}

/** Reads one tag-length-value at `offset`, which must lie within `[offset, limit)`. */
export function readTlv(buf: Uint8Array, offset: number, limit: number): Tlv | string {
  if (offset + 2 > limit) return 'truncated element';
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) return 'multi-byte tags are not expected';
  let lenByte = buf[offset + 1] as number;
  let pos = offset + 2;
  let length: number;
  if (lenByte < 0x80) {
    length = lenByte;
  } else {
    lenByte &= 0x7f;
    if (lenByte === 0) return 'indefinite length is not DER';
    if (lenByte > 4) return 'element too long';
    if (pos + lenByte > limit) return 'truncated length';
    length = 0;
    for (let i = 0; i < lenByte; i++) length = length * 256 + (buf[pos + i] as number);
    pos += lenByte;
  }
  if (pos + length > limit) return 'element overruns its container';
  return { tag, start: pos, end: pos + length };
}

/** Iterates the children of a constructed element, stopping at the first problem. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] | string {
  const out: Tlv[] = [];
  let pos = parent.start;
  while (pos < parent.end) {
    const child = readTlv(buf, pos, parent.end);
    if (typeof child === 'string') return child;
    out.push(child);
    pos = child.end;
  }
  return out;
}

const TAG_SEQUENCE = 0x30;
const TAG_OID = 0x06;
const TAG_BOOLEAN = 0x01;
const TAG_OCTET_STRING = 0x04;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;
const TAG_EXTENSIONS = 0xa3;
/** GeneralName [2] dNSName and [6] uniformResourceIdentifier (IMPLICIT IA5String). */
const TAG_SAN_DNS = 0x82;
const TAG_SAN_URI = 0x86;
/** 2.5.29.17 */
const OID_SAN = Uint8Array.of(0x55, 0x1d, 0x11);

export interface CertificateFields {
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
}

export interface FieldLimits {
  /** Most URI + DNS SAN entries accepted; more make the certificate malformed. */
  readonly maxSans: number;
  /** Longest single SAN value accepted. */
  readonly maxSanLength: number;
}

function parseTime(buf: Uint8Array, t: Tlv): number | string {
  const text = Buffer.from(buf.subarray(t.start, t.end)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG_UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
    if (!m) return 'bad UTCTime';
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy; // RFC 5280 §4.1.2.5.1
  } else if (t.tag === TAG_GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
    if (!m) return 'bad GeneralizedTime';
    year = Number(m[1]);
  } else {
    return 'unexpected time type';
  }
  const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isFinite(ms) ? ms : 'bad time';
}

/** Printable ASCII without spaces: what a URI or DNS SAN may contain before it reaches a header. */
function printable(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i] as number;
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

/**
 * Extracts the validity window and the URI / DNS SANs (in certificate order) from a DER
 * certificate. The whole buffer must be exactly one certificate: trailing bytes are a problem.
 */
export function readCertificateFields(der: Uint8Array, limits: FieldLimits): CertificateFields | string {
  const cert = readTlv(der, 0, der.length);
  if (typeof cert === 'string') return cert;
  if (cert.tag !== TAG_SEQUENCE) return 'not a certificate';
  if (cert.end !== der.length) return 'trailing data after the certificate';
  const top = children(der, cert);
  if (typeof top === 'string') return top;
  const tbs = top[0];
  if (!tbs || tbs.tag !== TAG_SEQUENCE) return 'no tbsCertificate';
  const fields = children(der, tbs);
  if (typeof fields === 'string') return fields;

  // [0] version (optional), serial, signature, issuer, validity, subject, spki, [1], [2], [3] extensions
  let i = fields[0]?.tag === 0xa0 ? 1 : 0;
  const validity = fields[i + 3];
  if (!validity || validity.tag !== TAG_SEQUENCE) return 'no validity';
  const times = children(der, validity);
  if (typeof times === 'string') return times;
  if (times.length !== 2) return 'bad validity';
  const notBeforeMs = parseTime(der, times[0] as Tlv);
  const notAfterMs = parseTime(der, times[1] as Tlv);
  if (typeof notBeforeMs === 'string') return notBeforeMs;
  if (typeof notAfterMs === 'string') return notAfterMs;

  const uriSans: string[] = [];
  const dnsSans: string[] = [];
  i += 6;
  let extensions: Tlv | undefined;
  for (; i < fields.length; i++) if (fields[i]?.tag === TAG_EXTENSIONS) extensions = fields[i];
  if (extensions) {
    const seq = readTlv(der, extensions.start, extensions.end);
    if (typeof seq === 'string') return seq;
    const list = children(der, seq);
    if (typeof list === 'string') return list;
    let sawSan = false;
    for (const ext of list) {
      const parts = children(der, ext);
      if (typeof parts === 'string') return parts;
      const oid = parts[0];
      if (!oid || oid.tag !== TAG_OID || !equalBytes(der.subarray(oid.start, oid.end), OID_SAN)) continue;
      if (sawSan) return 'more than one subjectAltName extension';
      sawSan = true;
      const value = parts[parts.length - 1];
      if (!value || value.tag !== TAG_OCTET_STRING || (parts.length === 3 && parts[1]?.tag !== TAG_BOOLEAN)) {
        return 'bad subjectAltName extension';
      }
      const names = readTlv(der, value.start, value.end);
      if (typeof names === 'string') return names;
      if (names.tag !== TAG_SEQUENCE || names.end !== value.end) return 'bad subjectAltName extension';
      // Walked one entry at a time and counted whatever its type, so a huge list costs nothing
      // beyond the cap.
      let count = 0;
      for (let pos = names.start; pos < names.end; ) {
        const entry = readTlv(der, pos, names.end);
        if (typeof entry === 'string') return entry;
        pos = entry.end;
        if (++count > limits.maxSans) return `more than ${limits.maxSans} subjectAltName entries`;
        if (entry.tag !== TAG_SAN_DNS && entry.tag !== TAG_SAN_URI) continue;
        if (entry.end - entry.start > limits.maxSanLength) return `a SAN is longer than ${limits.maxSanLength} bytes`;
        if (entry.end === entry.start) return 'an empty SAN';
        if (!printable(der, entry.start, entry.end)) return 'a SAN contains spaces, control or non-ASCII characters';
        const text = Buffer.from(der.subarray(entry.start, entry.end)).toString('latin1');
        (entry.tag === TAG_SAN_URI ? uriSans : dnsSans).push(text);
      }
    }
  }
  return { notBeforeMs, notAfterMs, uriSans, dnsSans };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
