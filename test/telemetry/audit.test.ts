import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  REDACTED,
  buildAuditRecord,
  createAuditSink,
  serializeAuditRecord,
  type AuditInput,
  type AuditRecord,
  type AuditSink,
} from '../../src/telemetry/audit.js';
import { allow, deny, identity, requestView, APP_ID, OID, TENANT } from './fixtures.js';

const NOW = new Date('2025-03-04T05:06:07.089Z');

function input(overrides: Partial<AuditInput> = {}): AuditInput {
  return {
    decision: allow(),
    request: requestView(),
    peer: { principal: 'spiffe://cluster.local/ns/shop/sa/checkout', fingerprintSha256: 'sha256:0a1b2c' },
    durationMs: 0.4567891,
    tokenCacheHit: false,
    dryRun: false,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: '1111222233334444',
    now: NOW,
    redactQuery: true,
    ...overrides,
  };
}

const dirs: string[] = [];
const sinks: AuditSink[] = [];
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'entra-authz-audit-'));
  dirs.push(d);
  return d;
}
function track(sink: AuditSink): AuditSink {
  sinks.push(sink);
  return sink;
}
function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

describe('audit record', () => {
  it('records every field of an allow decision', () => {
    const record = buildAuditRecord(input());
    expect(record).toEqual({
      time: '2025-03-04T05:06:07.089Z',
      type: 'entra_authz.decision',
      decisionId: 'dec-allow-1',
      decision: 'allow',
      reason: 'allowed',
      rule: 'orders-read',
      mode: 'grpc',
      dryRun: false,
      wouldDeny: null,
      detail: null,
      oid: OID,
      tid: TENANT,
      appId: APP_ID,
      tokenType: 'app',
      tokenVersion: '2.0',
      roles: ['Orders.Read', 'Orders.Write'],
      scopes: [],
      requirements: [],
      uti: 'AbCdEfGhIjKlMnOpQrStUv',
      tokenHash: 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg',
      method: 'GET',
      host: 'orders.example.com',
      path: '/orders/42',
      query: null,
      sourceAddress: '10.1.2.3',
      sourcePort: 51234,
      peerPrincipal: 'spiffe://cluster.local/ns/shop/sa/checkout',
      peerCertFingerprint: 'sha256:0a1b2c',
      requestId: 'req-123',
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: '1111222233334444',
      durationMs: 0.457,
      cacheHit: false,
    } satisfies AuditRecord);
  });

  it('records a dry-run allow with the denial it stands for and the requirement outcomes', () => {
    const decision = allow({
      detail: 'dry-run, would deny missing_role: roles allOf Orders.Admin: lacks Orders.Admin',
      dryRun: { wouldDeny: 'missing_role', detail: 'roles allOf Orders.Admin: lacks Orders.Admin' },
    });
    const record = buildAuditRecord(
      input({ decision, outcomes: [{ requirement: 'roles allOf Orders.Admin', met: false, detail: 'lacks Orders.Admin' }] }),
    );
    expect(record).toMatchObject({
      decision: 'allow',
      reason: 'allowed',
      dryRun: true,
      wouldDeny: 'missing_role',
      detail: 'dry-run, would deny missing_role: roles allOf Orders.Admin: lacks Orders.Admin',
      requirements: [{ requirement: 'roles allOf Orders.Admin', met: false, detail: 'lacks Orders.Admin' }],
    });
  });

  it('records a deny with its detail, the roles that counted, a cache hit and an explicit dry-run flag', () => {
    const record = buildAuditRecord(
      input({ decision: deny(), dryRun: true, tokenCacheHit: true, counted: { roles: ['Orders.Write'], scopes: [] } }),
    );
    expect(record).toMatchObject({
      decision: 'deny',
      reason: 'missing_role',
      rule: 'orders-write',
      dryRun: true,
      cacheHit: true,
      detail: 'required all of Orders.Admin',
      roles: ['Orders.Write'],
    });
  });

  it('redacts the query string by default and keeps it when told to', () => {
    const request = requestView({ path: '/cb', query: 'code=SplxlOBeZQQYbYS6WxSbIA&state=x' });
    expect(buildAuditRecord(input({ request })).query).toBe(REDACTED);
    expect(buildAuditRecord(input({ request })).path).toBe('/cb');
    expect(buildAuditRecord(input({ request, redactQuery: false })).query).toBe('code=SplxlOBeZQQYbYS6WxSbIA&state=x');
  });

  it('falls back to the request principal and uses nulls for what is unknown', () => {
    const record = buildAuditRecord(input({ decision: deny({ reason: 'token_missing', identity: undefined, rule: undefined }), peer: undefined, traceId: undefined, spanId: undefined }));
    expect(record).toMatchObject({
      oid: null,
      tid: null,
      appId: null,
      tokenType: null,
      roles: [],
      scopes: [],
      uti: null,
      tokenHash: null,
      rule: null,
      peerPrincipal: 'spiffe://cluster.local/ns/shop/sa/checkout',
      peerCertFingerprint: null,
      traceId: null,
      spanId: null,
    });
  });

  it('records a decision without a request view (malformed CheckRequest) and a hash of an unverified token', () => {
    const record = buildAuditRecord(
      input({
        decision: deny({ reason: 'request_malformed', identity: undefined, rule: undefined, detail: 'the request has no http section' }),
        request: undefined,
        peer: undefined,
        rejectedTokenHash: 'hash-of-unverified',
      }),
    );
    expect(record).toMatchObject({ method: null, host: null, path: null, query: null, sourceAddress: null, sourcePort: null, requestId: null });
    expect(record.tokenHash).toBe('hash-of-unverified');
    expect(record.detail).toBe('the request has no http section');
  });

  it('redacts a token a client put in the path, the query or a detail', () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    const record = buildAuditRecord(
      input({
        request: requestView({ path: `/callback/${token}`, query: `id_token=${token}` }),
        decision: deny({ detail: `path "/callback/${token}" has a ";" (path parameters)` }),
        redactQuery: false,
      }),
    );
    expect(record.path).toBe('/callback/[redacted-jwt]');
    expect(record.query).toBe('id_token=[redacted-jwt]');
    expect(serializeAuditRecord(record)).not.toContain('c2lnbmF0dXJl');
  });

  it('caps oversized paths and role lists so one request cannot make a huge line', () => {
    const record = buildAuditRecord(
      input({
        request: requestView({ path: `/${'a'.repeat(100_000)}` }),
        decision: allow({ identity: identity({ roles: Array.from({ length: 500 }, (_, i) => `Role.${i}`) }) }),
      }),
    );
    expect(record.path?.length).toBeLessThan(2200);
    expect(record.path).toMatch(/…\[truncated 97953 chars\]$/);
    expect(record.roles).toHaveLength(65);
    expect(record.roles.at(-1)).toBe('…[436 more]');
  });

  it('does not throw on an invalid clock reading', () => {
    expect(buildAuditRecord(input({ now: new Date(Number.NaN) })).time).toBe('1970-01-01T00:00:00.000Z');
  });
});

describe('audit line serialization', () => {
  const hostile =
    '/a\nb\r\n{"decision":"allow"}\u2028c\u2029d\u0085e\u0000f\u001b[31mg\u007fh\u202ei\u200bj\ufeffk\t"l\\m';

  it('escapes newlines, control characters, U+2028/2029 and bidi controls so a path cannot forge a line', () => {
    const line = serializeAuditRecord(buildAuditRecord(input({ request: requestView({ path: hostile }) })));
    expect(line.endsWith('\n')).toBe(true);
    const body = line.slice(0, -1);
    // Exactly one line, by any definition of a line break.
    // eslint-disable-next-line no-control-regex
    expect(body).not.toMatch(/[\n\r\u0085\u2028\u2029\u000b\u000c]/);
    // Nothing outside printable ASCII is left raw except ordinary non-ASCII text.
    // eslint-disable-next-line no-control-regex
    expect(body).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/);
    expect(body).toContain('\\u2028');
    expect(body).toContain('\\u0085');
    expect(body).toContain('\\u202e');
    expect(body).toContain('\\u001b');
  });

  it('round-trips: parsing the line gives back the exact path', () => {
    const line = serializeAuditRecord(buildAuditRecord(input({ request: requestView({ path: hostile }) })));
    expect((JSON.parse(line) as AuditRecord).path).toBe(hostile);
  });

  it('keeps ordinary non-ASCII text readable', () => {
    const line = serializeAuditRecord(buildAuditRecord(input({ request: requestView({ path: '/café/日本' }) })));
    expect(line).toContain('/café/日本');
  });
});

describe('audit sink', () => {
  it('writes one parseable line per record to a file', async () => {
    const file = join(tempDir(), 'audit.log');
    const sink = track(createAuditSink({ sink: { file }, sampleAllows: 1 }));
    expect(sink.write(buildAuditRecord(input()))).toBe(true);
    expect(sink.write(buildAuditRecord(input({ decision: deny() })))).toBe(true);
    await sink.flush();
    const records = lines(readFileSync(file, 'utf8')).map((l) => JSON.parse(l) as AuditRecord);
    expect(records.map((r) => [r.decisionId, r.decision])).toEqual([
      ['dec-allow-1', 'allow'],
      ['dec-deny-1', 'deny'],
    ]);
    expect(sink.stats).toEqual({ written: 2, dropped: 0, sampledOut: 0 });
  });

  it('writes gathered lines within a tenth of a second without being asked to flush', async () => {
    const file = join(tempDir(), 'audit.log');
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const sink = track(createAuditSink({ sink: { file }, sampleAllows: 1 }));
      await vi.waitFor(() => expect(readFileSync(file, 'utf8')).toBe(''));
      sink.write(buildAuditRecord(input()));
      expect(readFileSync(file, 'utf8')).toBe('');
      vi.advanceTimersByTime(100);
      await vi.waitFor(() => expect(lines(readFileSync(file, 'utf8'))).toHaveLength(1));
    } finally {
      vi.useRealTimers();
    }
  });

  it('appends to an existing file and reopens it after rotation', async () => {
    const dir = tempDir();
    const file = join(dir, 'audit.log');
    const first = createAuditSink({ sink: { file }, sampleAllows: 1 });
    first.write(buildAuditRecord(input()));
    await first.close();
    const sink = track(createAuditSink({ sink: { file }, sampleAllows: 1 }));
    sink.write(buildAuditRecord(input()));
    await sink.flush();
    expect(lines(readFileSync(file, 'utf8'))).toHaveLength(2);

    renameSync(file, `${file}.1`);
    sink.reopen();
    sink.write(buildAuditRecord(input({ decision: deny() })));
    await sink.flush();
    expect(lines(readFileSync(`${file}.1`, 'utf8'))).toHaveLength(2);
    expect(lines(readFileSync(file, 'utf8')).map((l) => (JSON.parse(l) as AuditRecord).decision)).toEqual(['deny']);
  });

  it('samples allows with the injected random source and always records denials and errors', () => {
    const out: string[] = [];
    const draws = [0.05, 0.5, 0.09, 0.99];
    const sink = createAuditSink({ sink: { write: (l) => out.push(l) }, sampleAllows: 0.1, random: () => draws.shift() ?? 1 });
    const results = [
      sink.write(buildAuditRecord(input())), // 0.05 < 0.1: kept
      sink.write(buildAuditRecord(input())), // 0.5: sampled out
      sink.write(buildAuditRecord(input({ decision: deny() }))), // no draw
      sink.write(buildAuditRecord(input({ decision: allow({ kind: 'unavailable', reason: 'keys_unavailable' } as never) }))),
      sink.write(buildAuditRecord(input())), // 0.09: kept
      sink.write(buildAuditRecord(input())), // 0.99: sampled out
    ];
    expect(results).toEqual([true, false, true, true, true, false]);
    expect(out.map((l) => (JSON.parse(l) as AuditRecord).decision)).toEqual(['allow', 'deny', 'unavailable', 'allow']);
    expect(sink.stats).toEqual({ written: 4, dropped: 0, sampledOut: 2 });
  });

  it('records no allows at rate 0, but still every deny and every dry-run allow', () => {
    const out: string[] = [];
    const sink = createAuditSink({ sink: { write: (l) => out.push(l) }, sampleAllows: 0, random: () => 0 });
    sink.write(buildAuditRecord(input()));
    sink.write(buildAuditRecord(input({ decision: deny() })));
    sink.write(buildAuditRecord(input({ decision: allow({ dryRun: { wouldDeny: 'token_expired', detail: 'exp' } }) })));
    expect(out.map((l) => (JSON.parse(l) as AuditRecord).reason)).toEqual(['missing_role', 'allowed']);
  });

  it('refuses a sampling rate outside [0, 1]', () => {
    expect(() => createAuditSink({ sink: 'off', sampleAllows: 1.5 })).toThrow(RangeError);
    expect(() => createAuditSink({ sink: 'off', sampleAllows: Number.NaN })).toThrow(RangeError);
  });

  it('reports an unwritable file once, drops records, and never throws', async () => {
    // A directory in place of the file fails for every user, root included (EISDIR); a read-only
    // directory (EACCES) takes the same path.
    const dir = tempDir();
    const errors: { code: string | undefined; target: string }[] = [];
    const dropped: number[] = [];
    const sink = track(
      createAuditSink({
        sink: { file: dir },
        sampleAllows: 1,
        onError: (err, target) => errors.push({ code: (err as NodeJS.ErrnoException).code, target }),
        onDrop: (n) => dropped.push(n),
      }),
    );
    expect(() => sink.write(buildAuditRecord(input({ decision: deny() })))).not.toThrow();
    await sink.flush();
    for (let i = 0; i < 3; i++) expect(sink.write(buildAuditRecord(input({ decision: deny() })))).toBe(false);
    await expect(sink.flush()).resolves.toBeUndefined();
    await expect(sink.close()).resolves.toBeUndefined();
    expect(errors).toEqual([{ code: 'EISDIR', target: dir }]);
    expect(dropped).toEqual([1, 1, 1]);
    expect(sink.stats.dropped).toBe(3);
  });

  it('reports a missing directory the same way', async () => {
    const errors: string[] = [];
    const sink = track(
      createAuditSink({ sink: { file: join(tempDir(), 'no', 'such', 'audit.log') }, sampleAllows: 1, onError: (e) => errors.push((e as NodeJS.ErrnoException).code ?? '') }),
    );
    sink.write(buildAuditRecord(input()));
    await sink.flush();
    expect(errors).toEqual(['ENOENT']);
  });

  it('writes the failure to stderr by default', async () => {
    const written: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      const sink = track(createAuditSink({ sink: { file: tempDir() }, sampleAllows: 1 }));
      sink.write(buildAuditRecord(input()));
      await sink.flush();
      sink.write(buildAuditRecord(input()));
      await sink.flush();
    } finally {
      process.stderr.write = original;
    }
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(/AUDIT LOG FAILURE.*EISDIR.*DROPPED/);
  });

  it('survives a custom writer that throws', () => {
    const errors: Error[] = [];
    const sink = createAuditSink({
      sink: {
        write: () => {
          throw new Error('pipe closed');
        },
      },
      sampleAllows: 1,
      onError: (e) => errors.push(e),
    });
    expect(sink.write(buildAuditRecord(input()))).toBe(false);
    expect(sink.write(buildAuditRecord(input()))).toBe(false);
    expect(errors).toHaveLength(1);
    expect(sink.stats.dropped).toBe(2);
  });

  it('does nothing when off', async () => {
    const sink = createAuditSink({ sink: 'off', sampleAllows: 1 });
    expect(sink.write(buildAuditRecord(input({ decision: deny() })))).toBe(false);
    await sink.close();
  });
});
