import { z } from 'zod';
import { listenSchema } from './listen.js';

/**
 * The `telemetry` section of the configuration file: the admin HTTP listener and the audit log.
 *
 * Tracing is deliberately absent: it is configured with the standard `OTEL_*` environment
 * variables (see `docs/observability.md`) so that operators use the same knobs as for every other
 * OpenTelemetry-instrumented service.
 *
 * Every object is strict (a misspelt key is an error) and every field has a default, so an absent
 * `telemetry:` section is valid and means "admin on 0.0.0.0:9090, every decision audited to stdout
 * with query strings redacted".
 */

export const adminSchema = z.strictObject({
  /** Listener for /healthz, /readyz and /metrics. Port 0 picks a free port (tests). */
  listen: listenSchema.default('0.0.0.0:9090'),
});

export const auditSchema = z
  .strictObject({
    /** Where audit records go: `stdout`, a `file` (path in `file`), or `off`. */
    sink: z.enum(['stdout', 'file', 'off']).default('stdout'),
    /** Path of the audit file; required when `sink: file`, refused otherwise. */
    file: z.string().min(1).optional(),
    /** Fraction (0..1) of allow decisions recorded; denials and errors are always recorded. */
    sampleAllows: z.number().min(0).max(1).default(1),
    /** Record `[redacted]` instead of the query string (it often carries secrets such as codes). */
    redactQuery: z.boolean().default(true),
    /**
     * Most bytes of audit records held in memory while stdout or the file is slower than the
     * checks; beyond that records are dropped (counted in /metrics, reported once in the log).
     */
    maxBufferBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(1024 * 1024 * 1024)
      .default(16 * 1024 * 1024),
  })
  .superRefine((audit, ctx) => {
    if (audit.sink === 'file' && audit.file === undefined) {
      ctx.addIssue({ code: 'custom', path: ['file'], message: 'a file path is required when sink is "file"' });
    }
    if (audit.sink !== 'file' && audit.file !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['file'], message: `file is only used when sink is "file" (sink is "${audit.sink}")` });
    }
  });

export const telemetrySchema = z.strictObject({
  admin: adminSchema.prefault({}),
  audit: auditSchema.prefault({}),
});

/**
 * Plug into the main schema as `telemetry: telemetrySectionSchema` — it already defaults to `{}`
 * (and every nested default is applied), so the section may be omitted from the file.
 */
export const telemetrySectionSchema = telemetrySchema.prefault({});

export type TelemetryConfig = z.output<typeof telemetrySchema>;
export type TelemetryConfigInput = z.input<typeof telemetrySchema>;
export type AuditConfig = z.output<typeof auditSchema>;
export type AdminConfig = z.output<typeof adminSchema>;
