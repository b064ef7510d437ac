import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = Pick<PinoLogger, 'debug' | 'info' | 'warn' | 'error'>;

/**
 * Operational log: JSON lines on stderr, so stdout stays free for audit records. Never given a
 * token, secret or key; callers log oid/tid/uti or hashes instead.
 */
export function createLogger(level = process.env['LOG_LEVEL'] ?? 'info'): PinoLogger {
  return pino({ level, base: { service: 'entra-authz' } }, pino.destination({ fd: 2, sync: false }));
}

/** A logger that drops everything (tests). */
export function silentLogger(): PinoLogger {
  return pino({ level: 'silent' });
}
