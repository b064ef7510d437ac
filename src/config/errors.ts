/**
 * The one error a configuration problem raises. It imports nothing, so every module that checks a
 * piece of configuration (schema, rules, peer settings) can throw it without depending on the loader.
 */

/** One problem in a configuration file, located by its path (`entra.tenants[0]`). */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

/** A value's path in configuration notation: `entra.tenants[0]`, or `(root)` for the whole document. */
export function formatConfigPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

/** Thrown when a configuration cannot be used; lists every problem at once. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(`${source}: invalid configuration\n${problems.map((p) => `  - ${p.path}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}
