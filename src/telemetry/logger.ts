import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { redactJwts } from '../core/redact.js';

export type Logger = Pick<PinoLogger, 'debug' | 'info' | 'warn' | 'error'>;

/** Deepest nesting of a log argument whose strings are redacted; deeper values are dropped. */
const MAX_DEPTH = 6;

/** Copies a log argument with JWT-shaped substrings redacted in every string it holds. */
function redactArgument(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactJwts(value);
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(value)) return value.map((v) => redactArgument(v, depth + 1));
  if (value instanceof Error) {
    const copy = new Error(redactJwts(value.message));
    copy.name = value.name;
    copy.stack = redactJwts(value.stack ?? '');
    return copy;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactArgument(v, depth + 1);
  return out;
}

/**
 * Operational log: JSON lines on stderr, so stdout stays free for audit records. Never given a
 * token, secret or key; callers log oid/tid/uti or hashes instead — and as a second line of
 * defence every string logged has JWT-shaped substrings redacted.
 */
export function createLogger(level = process.env['LOG_LEVEL'] ?? 'info', destination: DestinationStream = pino.destination({ fd: 2, sync: false })): PinoLogger {
  return pino(
    {
      level,
      base: { service: 'entra-authz' },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => redactArgument(a)) as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}

/** A logger that drops everything (tests). */
export function silentLogger(): PinoLogger {
  return pino({ level: 'silent' });
}
