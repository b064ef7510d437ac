/**
 * Once the audit file named in argv[2] is open, writes argv[3] records, lets one turn of the event
 * loop pass, and exits the process at once (as a fatal error handler would): no close, no flush.
 */
import { buildAuditRecord, createAuditSink } from '../../src/telemetry/audit.js';

const file = process.argv[2]!;
const records = Number(process.argv[3]);
const sink = createAuditSink({ sink: { file }, sampleAllows: 1 });
// The file opens asynchronously; a running server has had it open since start-up.
await new Promise((resolve) => setTimeout(resolve, 200));
for (let i = 0; i < records; i++) {
  const decision = { kind: 'deny', id: `decision-${i}`, reason: 'token_missing', detail: 'no authorization header', rule: 'orders', identity: undefined } as const;
  sink.write(buildAuditRecord({ decision, durationMs: 0.1, now: new Date(), redactQuery: true }));
}
setImmediate(() => process.exit(0));
