import { z } from 'zod';
import { closest } from './suggest.js';

/** One configuration problem in plain words, at a path of the parsed document. */
export interface IssueProblem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

type Issue = z.core.$ZodIssue;
type Schema = z.core.$ZodType;
interface Def {
  readonly type: string;
  readonly shape?: Record<string, Schema>;
  readonly innerType?: Schema;
  readonly in?: Schema;
  readonly element?: Schema;
  readonly valueType?: Schema;
  readonly options?: readonly Schema[];
  readonly left?: Schema;
  readonly right?: Schema;
  readonly getter?: () => Schema;
}

const defOf = (schema: Schema): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The object-like schemas a value may be checked against, wrappers (optional, default, pipe, union) removed. */
function variants(schema: Schema): Schema[] {
  const def = defOf(schema);
  const inner = def.innerType ?? def.in ?? def.getter?.();
  if (inner !== undefined) return variants(inner);
  if (def.options !== undefined) return def.options.flatMap(variants);
  if (def.left !== undefined && def.right !== undefined) return [...variants(def.left), ...variants(def.right)];
  return [schema];
}

/** The keys the schema accepts for the mapping at `path`. */
function knownKeys(schema: Schema, path: readonly PropertyKey[]): string[] {
  let current = variants(schema);
  for (const key of path) {
    current = current.flatMap((s) => {
      const def = defOf(s);
      if (def.type === 'object' && typeof key === 'string' && def.shape?.[key] !== undefined) return variants(def.shape[key]);
      if (def.type === 'array' && typeof key === 'number' && def.element !== undefined) return variants(def.element);
      if (def.type === 'record' && def.valueType !== undefined) return variants(def.valueType);
      return [];
    });
  }
  return [...new Set(current.flatMap((s) => Object.keys(defOf(s).shape ?? {})))];
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping (key: value)',
};

function found(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  return EXPECTED[typeof input] ?? typeof input;
}

const plural = (n: number | bigint, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The issue in plain words; undefined when zod's wording is all there is to say. */
function plainWords(issue: Issue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${EXPECTED[issue.expected] ?? issue.expected}, not ${found(issue.input)}`;
    case 'too_small': {
      const n = Number(issue.minimum);
      if (issue.origin === 'array' || issue.origin === 'set') return n === 1 ? 'must list at least one item' : `must list at least ${plural(n, 'item')}`;
      if (issue.origin === 'string') return n === 1 ? 'must not be empty' : `must be at least ${plural(n, 'character')} long`;
      return issue.inclusive ? `must be at least ${n}` : `must be greater than ${n}`;
    }
    case 'too_big': {
      const n = Number(issue.maximum);
      if (issue.origin === 'array' || issue.origin === 'set') return `may list at most ${plural(n, 'item')}`;
      if (issue.origin === 'string') return `must be at most ${plural(n, 'character')} long`;
      return issue.inclusive ? `must be at most ${n}` : `must be less than ${n}`;
    }
    case 'invalid_value': {
      const allowed = issue.values.map((v) => JSON.stringify(v));
      const suggestion = typeof issue.input === 'string' ? closest(issue.input, issue.values.map(String)) : undefined;
      const hint = suggestion !== undefined ? ` — did you mean ${JSON.stringify(suggestion)}?` : '';
      return allowed.length === 1 ? `must be ${allowed[0]}${hint}` : `must be one of ${allowed.join(', ')}${hint}`;
    }
    case 'invalid_format':
      if (issue.format === 'uuid' || issue.format === 'guid') return 'must be a GUID such as 11111111-2222-3333-4444-555555555555';
      if (issue.format === 'url') return 'must be a URL';
      if (issue.format === 'regex') return 'is not in the expected format';
      return `must be a valid ${issue.format}`;
    case 'invalid_union':
      return 'does not match any of the accepted forms (see docs/configuration.md)';
    default:
      return undefined;
  }
}

const defaultMessage = z.locales.en().localeError;

/**
 * A zod issue as configuration problems in plain words: zod's generic wording ("Too small:
 * expected array to have >=1 items") is rewritten, a message written in the schema is kept, and
 * each unknown key becomes its own problem at its own path with a "did you mean" when a known key
 * is close. Input values are never quoted (they may be secrets); only their kind is named.
 *
 * @param schema the schema that produced the issue, to find the keys it knows at the issue's path.
 */
export function describeIssue(issue: Issue, schema: Schema): IssueProblem[] {
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(schema, issue.path);
    return issue.keys.map((key) => {
      const suggestion = closest(key, known);
      const hint = suggestion !== undefined ? `did you mean "${suggestion}"?` : `known keys here: ${known.join(', ')}`;
      return { path: [...issue.path, key], message: `unknown key — ${hint}` };
    });
  }
  // zod's own English wording for this issue: when the message equals it, the schema wrote none.
  const generic = defaultMessage(issue as unknown as Parameters<typeof defaultMessage>[0]);
  const isGeneric = issue.message === (typeof generic === 'string' ? generic : generic?.message);
  return [{ path: issue.path, message: (isGeneric ? plainWords(issue) : undefined) ?? issue.message }];
}
