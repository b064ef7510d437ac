import { createRequire } from 'node:module';

/** The version in the project's package.json (two levels up from both src/telemetry and dist/telemetry). */
export function packageVersion(): string {
  try {
    const pkg = createRequire(import.meta.url)('../../package.json') as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
