import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { deepFreeze } from '../core/values.js';
import { ruleProblems } from '../policy/validate.js';
import { substituteEnv, type Env } from './env.js';
import { ConfigError, formatConfigPath, type ConfigProblem } from './errors.js';
import { describeIssue } from './messages.js';
import { configSchema, type Config } from './schema.js';

export { ConfigError, type ConfigProblem } from './errors.js';

/** Validates an already-parsed configuration object. */
export function validateConfig(data: unknown, source = 'config'): Config {
  // reportInput: messages name the kind of a wrong value (never the value itself).
  const result = configSchema.safeParse(data, { reportInput: true });
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.flatMap((issue) => describeIssue(issue, configSchema).map((p) => ({ path: formatConfigPath(p.path), message: p.message }))),
    );
  }
  // Cross-rule checks (duplicate names, unknown tenants, unreachable rules): src/policy/validate.ts.
  const problems: ConfigProblem[] = ruleProblems(result.data);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(result.data);
}

export interface ParseOptions {
  /** Variables for `${NAME}` substitution; default `process.env`. */
  readonly env?: Env;
}

/** Parses YAML text, substitutes `${ENV}` references (src/config/env.ts), validates. */
export function parseConfig(text: string, source = 'config', options: ParseOptions = {}): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({
        path: `line ${e.linePos?.[0]?.line ?? '?'}, column ${e.linePos?.[0]?.col ?? '?'}`,
        message: (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, ''),
      })),
    );
  }
  const substituted = substituteEnv(doc.toJS(), options.env ?? process.env);
  if (substituted.problems.length === 0) return validateConfig(substituted.value, source);
  // Report everything at once: the substitution problems, then the schema's problems elsewhere
  // (a value left unsubstituted would only repeat its own problem at the same path).
  const envPaths = new Set(substituted.problems.map((p) => p.path));
  let rest: readonly ConfigProblem[] = [];
  try {
    validateConfig(substituted.value, source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    rest = err.problems.filter((p) => !envPaths.has(p.path));
  }
  throw new ConfigError(source, [...substituted.problems, ...rest]);
}

/** Reads a configuration file's text; an unreadable file is a ConfigError like any other problem. */
export async function readConfigText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [{ path: '(file)', message: (err as Error).message }]);
  }
}

export async function loadConfigFile(path: string, options: ParseOptions = {}): Promise<Config> {
  return parseConfig(await readConfigText(path), path, options);
}
