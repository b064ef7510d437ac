/**
 * Environment-variable substitution in configuration values.
 *
 * In every string value (never in keys) of the parsed document:
 *   `${NAME}`             the value of NAME; an unset NAME is a problem reported with its path
 *   `${NAME:-default}`    the value of NAME, or `default` when NAME is unset or empty
 *   `$${`                 a literal `${`
 *
 * Substitution runs on the parsed YAML tree, after parsing: a variable's value is always a plain
 * string and can never add keys, lists or YAML syntax to the file. Values stay strings, so use
 * variables in string fields (hosts, GUIDs, audiences, header names, URLs); numbers and booleans
 * are written in the file.
 */
import { formatConfigPath } from './errors.js';


export interface EnvProblem {
  /** Path of the value, in the same notation as ConfigError (`entra.tenants[0]`). */
  readonly path: string;
  readonly message: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Substitutes one string; returns the new string or a problem message. */
export function substituteString(value: string, env: Env): { ok: true; value: string } | { ok: false; message: string } {
  if (!value.includes('$')) return { ok: true, value };
  let out = '';
  let i = 0;
  while (i < value.length) {
    const dollar = value.indexOf('$', i);
    if (dollar === -1) {
      out += value.slice(i);
      break;
    }
    out += value.slice(i, dollar);
    if (value.startsWith('$${', dollar)) {
      out += '${';
      i = dollar + 3;
      continue;
    }
    if (!value.startsWith('${', dollar)) {
      out += '$';
      i = dollar + 1;
      continue;
    }
    const close = value.indexOf('}', dollar + 2);
    if (close === -1) return { ok: false, message: 'unterminated ${…} (write $${ for a literal ${)' };
    const body = value.slice(dollar + 2, close);
    const sep = body.indexOf(':-');
    const name = sep === -1 ? body : body.slice(0, sep);
    if (!NAME.test(name)) return { ok: false, message: `invalid variable name ${JSON.stringify(name)} in \${…}` };
    const got = Object.hasOwn(env, name) ? env[name] : undefined;
    if (sep === -1) {
      if (got === undefined) return { ok: false, message: `environment variable ${name} is not set (give a default with \${${name}:-value})` };
      out += got;
    } else {
      out += got === undefined || got === '' ? body.slice(sep + 2) : got;
    }
    i = close + 1;
  }
  return { ok: true, value: out };
}

/**
 * Returns a copy of `data` with every string value substituted, and every problem (with its path).
 * Plain objects and arrays are walked; everything else is kept as is.
 */
export function substituteEnv(data: unknown, env: Env): { value: unknown; problems: EnvProblem[] } {
  const problems: EnvProblem[] = [];
  const walk = (v: unknown, path: (string | number)[]): unknown => {
    if (typeof v === 'string') {
      const r = substituteString(v, env);
      if (r.ok) return r.value;
      problems.push({ path: formatConfigPath(path), message: r.message });
      return v;
    }
    if (Array.isArray(v)) return v.map((item, i) => walk(item, [...path, i]));
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      // defineProperty: a `__proto__` key stays a plain (refused-as-unknown) key, never a prototype.
      for (const [k, item] of Object.entries(v)) {
        Object.defineProperty(out, k, { value: walk(item, [...path, k]), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    return v;
  };
  return { value: walk(data, []), problems };
}
