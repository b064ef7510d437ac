import { describe, expect, it } from 'vitest';
import { telemetrySchema, telemetrySectionSchema } from '../../src/config/schema-telemetry.js';

const issues = (data: unknown) =>
  (telemetrySectionSchema.safeParse(data).error?.issues ?? []).map((i) => ({ path: i.path.join('.'), message: i.message }));

describe('telemetry config section', () => {
  it('defaults everything when the section is absent or empty', () => {
    const expected = { admin: { listen: '0.0.0.0:9090' }, audit: { sink: 'stdout', sampleAllows: 1, redactQuery: true, maxBufferBytes: 16 * 1024 * 1024 } };
    expect(telemetrySectionSchema.parse(undefined)).toEqual(expected);
    expect(telemetrySchema.parse({})).toEqual(expected);
    expect(telemetrySchema.parse({ audit: {} })).toEqual(expected);
  });

  it('accepts a file sink with its path and the other options', () => {
    expect(
      telemetrySchema.parse({
        admin: { listen: '[::]:9464' },
        audit: { sink: 'file', file: '/var/log/entra-authz/audit.log', sampleAllows: 0.05, redactQuery: false, maxBufferBytes: 1048576 },
      }),
    ).toEqual({
      admin: { listen: '[::]:9464' },
      audit: { sink: 'file', file: '/var/log/entra-authz/audit.log', sampleAllows: 0.05, redactQuery: false, maxBufferBytes: 1048576 },
    });
  });

  it('requires a path for the file sink and refuses one for the others', () => {
    expect(issues({ audit: { sink: 'file' } })).toEqual([{ path: 'audit.file', message: 'a file path is required when sink is "file"' }]);
    expect(issues({ audit: { sink: 'stdout', file: '/tmp/a.log' } })).toEqual([
      { path: 'audit.file', message: 'file is only used when sink is "file" (sink is "stdout")' },
    ]);
  });

  it('reports misspelt keys, bad values and bad listen addresses, each with its path', () => {
    const found = issues({ admin: { listen: '9090' }, audit: { sink: 'syslog', sampleAllows: 2, redactQuerry: true }, tracing: {} });
    expect(found.map((i) => i.path).sort()).toEqual(['', 'admin.listen', 'audit', 'audit.sampleAllows', 'audit.sink']);
    expect(issues({ admin: { listen: '0.0.0.0:99999' } })).toEqual([{ path: 'admin.listen', message: 'port must be at most 65535' }]);
  });

  it('refuses an audit buffer bound below 64 KiB or above 1 GiB', () => {
    expect(issues({ audit: { maxBufferBytes: 1024 } }).map((i) => i.path)).toEqual(['audit.maxBufferBytes']);
    expect(issues({ audit: { maxBufferBytes: 2 * 1024 ** 3 } }).map((i) => i.path)).toEqual(['audit.maxBufferBytes']);
  });
});
