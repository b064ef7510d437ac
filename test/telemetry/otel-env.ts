import { vi } from 'vitest';

/**
 * Sets exactly these `OTEL_*` variables for one test (the OpenTelemetry SDK reads process.env
 * itself): every other `OTEL_*` variable of the surrounding environment is removed. Undo with
 * `vi.unstubAllEnvs()`.
 */
export function otelEnv(vars: Record<string, string> = {}): void {
  for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) vi.stubEnv(name, undefined);
  for (const [name, value] of Object.entries(vars)) vi.stubEnv(name, value);
}
