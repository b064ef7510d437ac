/** A benchmark setting from the environment: a positive integer, else `fallback`; anything else stops the run. */
export function positiveIntEnv(name: string, fallback: number): number {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
}
