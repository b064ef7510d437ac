import { z } from 'zod';

const LISTEN = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** A `host:port` / `[v6]:port` config value, e.g. `0.0.0.0:9001`. */
export const listenSchema = z
  .string()
  .regex(LISTEN, 'expected host:port, e.g. 0.0.0.0:9001')
  .refine((v) => {
    const m = LISTEN.exec(v);
    return !m || Number(m[3]) <= 65535; // a non-match is already reported by the pattern
  }, 'port must be at most 65535');

/** A listen address split into its parts; `host` has no IPv6 brackets. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Splits `host:port` / `[v6]:port` (the config schema's form); throws a readable error for anything else. */
export function parseListen(listen: string): ListenAddress {
  const m = LISTEN.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`listen address ${JSON.stringify(listen)} is not host:port`);
  return { host: (m[1] ?? m[2]) as string, port };
}

/** `host:port`, bracketing an IPv6 host. */
export function formatListen({ host, port }: ListenAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
