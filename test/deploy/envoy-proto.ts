import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';

/**
 * Checks Envoy configuration (YAML → JSON) against Envoy's own API protos the way Envoy's proto3
 * JSON parser does, and stricter where a CI check should be:
 *
 * - every key must be a field of the message (proto name or JSON name): protobufjs' `fromObject`
 *   silently drops unknown keys, so the walk over the message descriptors is done here;
 * - every `google.protobuf.Any` (`typed_config`, ...) is resolved by its `@type` URL (the proto
 *   package is loaded on demand) and checked recursively; `xds.type.v3.TypedStruct` too;
 * - well-known types take their JSON forms (Duration `"0.5s"`, wrappers as bare values, Struct as
 *   any JSON); enums must name a defined value; integers are range-checked;
 * - at most one member of a oneof; a subset of protoc-gen-validate rules (`message.required`,
 *   `(validate.required)` oneofs, string/repeated/map lengths, numeric bounds, `enum.not_in`,
 *   `duration.gt`);
 * - deprecated fields and enum values are refused (Envoy only warns, or refuses some by default).
 *
 * The normalized result is then handed to protobufjs `fromObject` and encoded, so the config is
 * proven to be a well-formed message of the requested type.
 */

export interface ProtoProblem {
  /** Where, e.g. `static_resources.listeners[0].filter_chains[0].filters[0].typed_config<HttpConnectionManager>.foo`. */
  readonly path: string;
  readonly message: string;
}

export interface CheckResult {
  readonly problems: readonly ProtoProblem[];
  /** Full names of every message type met inside an Any, in order of appearance. */
  readonly anyTypes: readonly string[];
  /** Encoded message (only when there were no problems). */
  readonly encoded?: Uint8Array;
}

/** Include directories: Envoy's API protos as shipped in @grpc/grpc-js-xds, plus protobufjs' own google/protobuf. */
export function envoyProtoDirs(): string[] {
  const require = createRequire(import.meta.url);
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const protobufjsDir = dirname(require.resolve('protobufjs/package.json'));
  return [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d)), protobufjsDir];
}

const WRAPPERS: Record<string, string> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
};
const TYPED_STRUCTS = new Set(['.xds.type.v3.TypedStruct', '.udpa.type.v1.TypedStruct']);

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** proto3 JSON name of a field: `foo_bar` → `fooBar`. */
export function jsonName(protoName: string): string {
  return protoName.replace(/_(.)/g, (_, c: string) => c.toUpperCase());
}

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

function parseDuration(s: string): { seconds: string; nanos: number } | undefined {
  const m = DURATION.exec(s);
  if (!m) return undefined;
  const sign = m[1] ? -1 : 1;
  const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  const seconds = BigInt(m[2] ?? '0');
  if (seconds > 315_576_000_000n) return undefined;
  return { seconds: String(BigInt(sign) * seconds), nanos: sign * nanos };
}

/** Options of a field/oneof, flattened by protobufjs (`(validate.rules).string.min_len`). */
function opt(options: Obj | undefined, key: string): unknown {
  return options?.[key];
}

export class EnvoyProtoChecker {
  private readonly root: protobuf.Root;
  private readonly dirs: string[];
  private readonly loadedFiles = new Set<string>();

  private constructor(dirs: string[]) {
    this.dirs = dirs;
    this.root = new protobuf.Root();
    this.root.resolvePath = (_origin: string, target: string): string => {
      if (isAbsolute(target)) return target;
      for (const d of dirs) {
        const p = join(d, target);
        if (existsSync(p)) return p;
      }
      return target;
    };
  }

  /** Loads Bootstrap and what it imports; other packages are loaded when an `@type` names them. */
  static load(dirs: string[] = envoyProtoDirs()): EnvoyProtoChecker {
    const checker = new EnvoyProtoChecker(dirs);
    checker.root.loadSync(['envoy/config/bootstrap/v3/bootstrap.proto', 'google/protobuf/descriptor.proto'], { keepCase: true });
    checker.root.resolveAll();
    return checker;
  }

  /** Finds a message type by full name, loading its package's directory if needed. */
  lookupType(fullName: string): protobuf.Type | undefined {
    const name = fullName.replace(/^\./, '');
    const found = this.tryLookup(name);
    if (found) return found;
    // Package a.b.c lives in directory a/b/c; the first name after the package is a top-level
    // message, declared in exactly one file there. Only that file is loaded: sibling files may
    // import protos that are not shipped (e.g. opencensus next to opentelemetry).
    const parts = name.split('.');
    for (let i = parts.length - 1; i >= 1; i--) {
      const rel = parts.slice(0, i).join('/');
      const topLevel = parts[i] as string;
      const declares = new RegExp(`^message\\s+${topLevel}\\s*\\{`, 'm');
      for (const d of this.dirs) {
        const dir = join(d, rel);
        if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
        for (const f of readdirSync(dir).filter((x) => x.endsWith('.proto'))) {
          const file = join(dir, f);
          if (this.loadedFiles.has(file) || !declares.test(readFileSync(file, 'utf8'))) continue;
          this.loadedFiles.add(file);
          this.root.loadSync(file, { keepCase: true });
          this.root.resolveAll();
          const again = this.tryLookup(name);
          if (again) return again;
        }
      }
    }
    return undefined;
  }

  private tryLookup(name: string): protobuf.Type | undefined {
    const r = this.root.lookup(name);
    return r instanceof protobuf.Type ? r : undefined;
  }

  /** Checks `value` (parsed YAML/JSON) as a message of type `typeName`. */
  check(typeName: string, value: unknown): CheckResult {
    const type = this.lookupType(typeName);
    if (!type) return { problems: [{ path: '(root)', message: `unknown message type ${typeName}` }], anyTypes: [] };
    const ctx: Ctx = { problems: [], anyTypes: [] };
    const normalized = this.message(type, value, '', ctx);
    if (ctx.problems.length > 0) return { problems: ctx.problems, anyTypes: ctx.anyTypes };
    try {
      const msg = type.fromObject(normalized as Obj);
      const encoded = type.encode(msg).finish();
      type.decode(encoded);
      return { problems: [], anyTypes: ctx.anyTypes, encoded };
    } catch (err) {
      return { problems: [{ path: '(root)', message: `protobufjs could not encode: ${(err as Error).message}` }], anyTypes: ctx.anyTypes };
    }
  }

  // ---------------------------------------------------------------------------------------------

  private message(type: protobuf.Type, value: unknown, path: string, ctx: Ctx): unknown {
    const full = type.fullName;
    // Well-known types with special JSON forms.
    if (full === '.google.protobuf.Any') return this.any(value, path, ctx);
    if (full === '.google.protobuf.Duration') {
      const d = typeof value === 'string' ? parseDuration(value) : undefined;
      if (!d) ctx.problems.push({ path: p(path), message: `expected a duration like "0.5s", got ${show(value)}` });
      return d ?? {};
    }
    if (full === '.google.protobuf.Timestamp') {
      const t = typeof value === 'string' ? Date.parse(value) : NaN;
      if (!Number.isFinite(t) || !/Z$|[+-]\d\d:\d\d$/.test(String(value))) {
        ctx.problems.push({ path: p(path), message: `expected an RFC 3339 timestamp, got ${show(value)}` });
        return {};
      }
      return { seconds: String(Math.floor(t / 1000)), nanos: (t % 1000) * 1e6 };
    }
    if (full === '.google.protobuf.FieldMask') {
      if (typeof value !== 'string') ctx.problems.push({ path: p(path), message: `expected a field mask string, got ${show(value)}` });
      return { paths: typeof value === 'string' && value !== '' ? value.split(',') : [] };
    }
    if (full === '.google.protobuf.Struct') {
      if (!isObj(value)) {
        ctx.problems.push({ path: p(path), message: `expected an object (Struct), got ${show(value)}` });
        return {};
      }
      return structOf(value as { [k: string]: Json });
    }
    if (full === '.google.protobuf.Value') return valueOf(value as Json);
    if (full === '.google.protobuf.ListValue') {
      if (!Array.isArray(value)) ctx.problems.push({ path: p(path), message: `expected a list, got ${show(value)}` });
      return { values: Array.isArray(value) ? value.map((v) => valueOf(v as Json)) : [] };
    }
    const wrapped = WRAPPERS[full];
    if (wrapped !== undefined) return { value: this.scalar(wrapped, value, path, ctx) };

    if (!isObj(value)) {
      ctx.problems.push({ path: p(path), message: `expected an object (${short(full)}), got ${show(value)}` });
      return {};
    }

    const out: Obj = {};
    const byName = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      byName.set(f.name, f);
      byName.set(jsonName(f.name), f);
    }
    const seen = new Map<protobuf.Field, string>();
    for (const [key, raw] of Object.entries(value)) {
      const field = byName.get(key);
      const at = path === '' ? key : `${path}.${key}`;
      if (!field) {
        ctx.problems.push({ path: at, message: `unknown field "${key}" in ${short(full)}${suggest(key, type)}` });
        continue;
      }
      const other = seen.get(field);
      if (other !== undefined) {
        ctx.problems.push({ path: at, message: `field given twice ("${other}" and "${key}")` });
        continue;
      }
      seen.set(field, key);
      if (raw === null && field.resolvedType?.fullName !== '.google.protobuf.Value') continue; // null = unset
      field.resolve();
      const fopts = field.options as Obj | undefined;
      if (opt(fopts, 'deprecated') === true) {
        ctx.problems.push({ path: at, message: `field "${field.name}" of ${short(full)} is deprecated` });
      }
      if (opt(fopts, '(envoy.annotations.disallowed_by_default)') === true) {
        ctx.problems.push({ path: at, message: `field "${field.name}" is disallowed by default` });
      }
      out[field.name] = this.fieldValue(field, raw, at, ctx);
    }

    // Oneofs: at most one member, and one when the oneof is required.
    for (const oneof of type.oneofsArray) {
      const isSynthetic = oneof.name.startsWith('_') && oneof.fieldsArray.length === 1;
      if (isSynthetic) continue;
      const set = oneof.fieldsArray.filter((f) => out[f.name] !== undefined);
      if (set.length > 1) {
        ctx.problems.push({ path: p(path), message: `only one of ${oneof.fieldsArray.map((f) => f.name).join(', ')} may be set (got ${set.map((f) => f.name).join(', ')})` });
      }
      if (set.length === 0 && opt(oneof.options as Obj | undefined, '(validate.required)') === true) {
        ctx.problems.push({ path: p(path), message: `one of ${oneof.fieldsArray.map((f) => f.name).join(', ')} is required in ${short(full)}` });
      }
    }

    // protoc-gen-validate rules that matter for hand-written configs.
    for (const field of type.fieldsArray) {
      this.validateRules(field, out[field.name], path === '' ? field.name : `${path}.${field.name}`, ctx);
    }
    return out;
  }

  private fieldValue(field: protobuf.Field, raw: unknown, at: string, ctx: Ctx): unknown {
    if (field instanceof protobuf.MapField) {
      const mf = field;
      if (!isObj(raw)) {
        ctx.problems.push({ path: at, message: `expected a map (object), got ${show(raw)}` });
        return undefined;
      }
      const out: Obj = {};
      for (const [k, v] of Object.entries(raw)) {
        if (mf.keyType !== 'string') this.scalar(mf.keyType, k, `${at}[${k}]`, ctx, true);
        out[k] = this.single(mf.type, mf.resolvedType, v, `${at}.${k}`, ctx);
      }
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(raw)) {
        ctx.problems.push({ path: at, message: `expected a list, got ${show(raw)}` });
        return undefined;
      }
      return raw.map((v, i) => this.single(field.type, field.resolvedType, v, `${at}[${i}]`, ctx));
    }
    return this.single(field.type, field.resolvedType, raw, at, ctx);
  }

  private single(typeName: string, resolved: protobuf.ReflectionObject | null, raw: unknown, at: string, ctx: Ctx): unknown {
    if (resolved instanceof protobuf.Type) return this.message(resolved, raw, at, ctx);
    if (resolved instanceof protobuf.Enum) return this.enumValue(resolved, raw, at, ctx);
    return this.scalar(typeName, raw, at, ctx);
  }

  private enumValue(e: protobuf.Enum, raw: unknown, at: string, ctx: Ctx): number | undefined {
    if (e.fullName === '.google.protobuf.NullValue') return 0;
    let name: string | undefined;
    if (typeof raw === 'string') name = raw;
    else if (typeof raw === 'number' && Number.isInteger(raw)) name = e.valuesById[raw];
    if (name === undefined || !(name in e.values)) {
      ctx.problems.push({ path: at, message: `${show(raw)} is not a value of ${short(e.fullName)} (${Object.keys(e.values).join(', ')})` });
      return undefined;
    }
    const vopts = (e.valuesOptions?.[name] ?? {}) as Obj;
    if (vopts['deprecated'] === true || vopts['(envoy.annotations.disallowed_by_default_enum)'] === true) {
      ctx.problems.push({ path: at, message: `enum value ${name} of ${short(e.fullName)} is deprecated` });
    }
    return e.values[name];
  }

  private scalar(type: string, raw: unknown, at: string, ctx: Ctx, isMapKey = false): unknown {
    const bad = (what: string): undefined => {
      ctx.problems.push({ path: at, message: `expected ${what}, got ${show(raw)}` });
      return undefined;
    };
    switch (type) {
      case 'string':
        return typeof raw === 'string' ? raw : bad('a string');
      case 'bool':
        if (typeof raw === 'boolean') return raw;
        if (isMapKey && (raw === 'true' || raw === 'false')) return raw === 'true';
        return bad('true or false');
      case 'bytes':
        return typeof raw === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(raw) ? raw : bad('base64 bytes');
      case 'double':
      case 'float': {
        if (typeof raw === 'number') return raw;
        if (raw === 'NaN' || raw === 'Infinity' || raw === '-Infinity') return Number(raw);
        if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
        return bad('a number');
      }
      default: {
        const isInt = INT32.has(type) || UINT32.has(type) || INT64.has(type) || UINT64.has(type);
        if (!isInt) return bad(`a value of unsupported scalar type ${type}`);
        let n: bigint;
        if (typeof raw === 'number' && Number.isInteger(raw)) n = BigInt(raw);
        else if (typeof raw === 'string' && /^-?\d+$/.test(raw)) n = BigInt(raw);
        else return bad(`an integer (${type})`);
        const [min, max] = INT32.has(type)
          ? [-(2n ** 31n), 2n ** 31n - 1n]
          : UINT32.has(type)
            ? [0n, 2n ** 32n - 1n]
            : INT64.has(type)
              ? [-(2n ** 63n), 2n ** 63n - 1n]
              : [0n, 2n ** 64n - 1n];
        if (n < min || n > max) return bad(`an integer in ${type} range`);
        return INT64.has(type) || UINT64.has(type) ? String(n) : Number(n);
      }
    }
  }

  private any(value: unknown, path: string, ctx: Ctx): unknown {
    if (!isObj(value) || typeof value['@type'] !== 'string') {
      ctx.problems.push({ path: p(path), message: 'expected an Any object with an "@type" string' });
      return {};
    }
    const typeUrl = value['@type'];
    const slash = typeUrl.lastIndexOf('/');
    const name = typeUrl.slice(slash + 1);
    if (slash < 0 || name === '') {
      ctx.problems.push({ path: p(path), message: `malformed type URL ${JSON.stringify(typeUrl)}` });
      return {};
    }
    const inner = this.lookupType(name);
    if (!inner) {
      ctx.problems.push({ path: p(path), message: `type URL ${JSON.stringify(typeUrl)} names no known message` });
      return {};
    }
    ctx.anyTypes.push(name);
    const innerPath = `${path}<${inner.name}>`;
    const { '@type': _ignored, ...rest } = value;
    const special = inner.fullName.startsWith('.google.protobuf.') && inner.fullName !== '.google.protobuf.Empty';
    let body: unknown = rest;
    if (special) {
      const keys = Object.keys(rest);
      if (keys.length !== 1 || keys[0] !== 'value') {
        ctx.problems.push({ path: p(path), message: `an Any of ${inner.name} carries its JSON form under "value" only` });
        return {};
      }
      body = rest['value'];
    }
    const before = ctx.problems.length;
    let normalized = this.message(inner, body, innerPath, ctx);
    if (TYPED_STRUCTS.has(inner.fullName) && isObj(rest)) {
      // TypedStruct: the struct must itself be a valid message of the named type.
      const url = rest['type_url'] ?? rest['typeUrl'];
      if (typeof url === 'string') {
        const nested = this.lookupType(url.slice(url.lastIndexOf('/') + 1));
        if (!nested) ctx.problems.push({ path: innerPath, message: `TypedStruct type_url ${JSON.stringify(url)} names no known message` });
        else {
          ctx.anyTypes.push(nested.fullName.slice(1));
          this.message(nested, rest['value'] ?? {}, `${innerPath}<${nested.name}>`, ctx);
        }
      }
    }
    if (ctx.problems.length > before) return {};
    try {
      normalized = inner.fromObject(normalized as Obj);
      return { type_url: typeUrl, value: inner.encode(normalized as protobuf.Message).finish() };
    } catch (err) {
      ctx.problems.push({ path: innerPath, message: `protobufjs could not encode: ${(err as Error).message}` });
      return {};
    }
  }

  private validateRules(field: protobuf.Field, value: unknown, at: string, ctx: Ctx): void {
    const o = field.options as Obj | undefined;
    if (!o) return;
    const present = value !== undefined;
    const inOneof = field.partOf !== null && field.partOf !== undefined;
    const isMessage = field.resolvedType instanceof protobuf.Type;
    const rule = (k: string): unknown => o[`(validate.rules).${k}`];

    // PGV applies no rule to an unset oneof member (the oneof's own `required` covers it).
    if (!present && inOneof) return;
    if (rule('message.required') === true && !present) {
      ctx.problems.push({ path: at, message: `required field "${field.name}" is missing` });
      return;
    }
    // Nor to an unset message field (wrappers included).
    if (!present && isMessage) return;

    if (field.repeated || field instanceof protobuf.MapField) {
      const n = Array.isArray(value) ? value.length : isObj(value) ? Object.keys(value).length : 0;
      const min = Number(rule('repeated.min_items') ?? rule('map.min_pairs') ?? 0);
      const max = rule('repeated.max_items') ?? rule('map.max_pairs');
      if (n < min) ctx.problems.push({ path: at, message: `needs at least ${min} item(s), has ${n}` });
      if (max !== undefined && n > Number(max)) ctx.problems.push({ path: at, message: `allows at most ${String(max)} item(s), has ${n}` });
      return;
    }

    const wrapped = isMessage ? (value as { value?: unknown } | undefined)?.value : value;
    const scalarType = isMessage ? WRAPPERS[(field.resolvedType as protobuf.Type).fullName] : field.type;
    if (scalarType === 'string' || (field.type === 'string' && !isMessage)) {
      const s = typeof wrapped === 'string' ? wrapped : '';
      const minLen = Number(rule('string.min_len') ?? 0);
      const minBytes = Number(rule('string.min_bytes') ?? 0);
      if ([...s].length < minLen || Buffer.byteLength(s) < minBytes) {
        ctx.problems.push({ path: at, message: `"${field.name}" must not be shorter than ${Math.max(minLen, minBytes)}` });
      }
      const maxBytes = rule('string.max_bytes');
      if (maxBytes !== undefined && Buffer.byteLength(s) > Number(maxBytes)) {
        ctx.problems.push({ path: at, message: `"${field.name}" is longer than ${String(maxBytes)} bytes` });
      }
      return;
    }
    if (field.resolvedType instanceof protobuf.Enum) {
      const notIn = rule('enum.not_in');
      const list = Array.isArray(notIn) ? notIn : notIn === undefined ? [] : [notIn];
      const v = typeof value === 'number' ? value : 0;
      if (list.map(Number).includes(v)) ctx.problems.push({ path: at, message: `"${field.name}" must be set to a value other than ${field.resolvedType.valuesById[v] ?? v}` });
      return;
    }
    if (isMessage && (field.resolvedType as protobuf.Type).fullName === '.google.protobuf.Duration') {
      const d = value as { seconds?: string; nanos?: number };
      const ns = BigInt(d.seconds ?? '0') * 1_000_000_000n + BigInt(d.nanos ?? 0);
      if (rule('duration.gt') !== undefined && ns <= durationNs(rule('duration.gt'))) {
        ctx.problems.push({ path: at, message: `"${field.name}" must be greater than ${show(rule('duration.gt'))}` });
      }
      if (rule('duration.gte') !== undefined && ns < durationNs(rule('duration.gte'))) {
        ctx.problems.push({ path: at, message: `"${field.name}" is below its minimum` });
      }
      if (rule('duration.lt') !== undefined && ns >= durationNs(rule('duration.lt'))) {
        ctx.problems.push({ path: at, message: `"${field.name}" is above its maximum` });
      }
      if (rule('duration.lte') !== undefined && ns > durationNs(rule('duration.lte'))) {
        ctx.problems.push({ path: at, message: `"${field.name}" is above its maximum` });
      }
      return;
    }
    if (scalarType !== undefined && scalarType !== 'bool' && scalarType !== 'bytes') {
      const n = Number(wrapped ?? 0);
      const bound = (k: string): number | undefined => {
        const v = rule(`${scalarType}.${k}`);
        return v === undefined ? undefined : Number(v);
      };
      const gt = bound('gt');
      const gte = bound('gte');
      const lt = bound('lt');
      const lte = bound('lte');
      if (gt !== undefined && !(n > gt)) ctx.problems.push({ path: at, message: `"${field.name}" must be > ${gt}, is ${n}` });
      if (gte !== undefined && !(n >= gte)) ctx.problems.push({ path: at, message: `"${field.name}" must be >= ${gte}, is ${n}` });
      if (lt !== undefined && !(n < lt)) ctx.problems.push({ path: at, message: `"${field.name}" must be < ${lt}, is ${n}` });
      if (lte !== undefined && !(n <= lte)) ctx.problems.push({ path: at, message: `"${field.name}" must be <= ${lte}, is ${n}` });
    }
  }
}

interface Ctx {
  problems: ProtoProblem[];
  anyTypes: string[];
}

function durationNs(v: unknown): bigint {
  if (isObj(v)) return BigInt(String(v['seconds'] ?? 0)) * 1_000_000_000n + BigInt(String(v['nanos'] ?? 0));
  return 0n;
}

function structOf(obj: { [k: string]: Json }): Obj {
  const fields: Obj = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = valueOf(v);
  return { fields };
}

function valueOf(v: Json): Obj {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(valueOf) } };
  return { structValue: structOf(v) };
}

const p = (path: string): string => (path === '' ? '(root)' : path);
const short = (fullName: string): string => fullName.replace(/^\./, '');

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function suggest(key: string, type: protobuf.Type): string {
  const want = key.toLowerCase().replace(/[_-]/g, '');
  const close = type.fieldsArray.find((f) => f.name.replace(/_/g, '') === want || editDistance(f.name, key) <= 2);
  return close ? ` (did you mean "${close.name}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) (dp[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = dp[i] as number[];
      const prev = dp[i - 1] as number[];
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return (dp[a.length] as number[])[b.length] as number;
}
