import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/telemetry/logger.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

function capture(): { lines: string[]; write(line: string): void } {
  const lines: string[] = [];
  return { lines, write: (line) => void lines.push(line) };
}

describe('operational log', () => {
  it('redacts a token in messages, fields, nested fields and errors', () => {
    const out = capture();
    const log = createLogger('info', out);
    log.warn({ path: `/cb/${TOKEN}`, nested: { list: [`Bearer ${TOKEN}`] } }, `refused ${TOKEN}`);
    log.error({ err: new Error(`bad token ${TOKEN}`) }, 'failed');
    log.info(`plain ${TOKEN}`);
    const text = out.lines.join('');
    expect(text).not.toContain('c2lnbmF0dXJl');
    const first = JSON.parse(out.lines[0] ?? '{}') as Record<string, unknown>;
    expect(first).toMatchObject({ msg: 'refused [redacted-jwt]', path: '/cb/[redacted-jwt]', nested: { list: ['Bearer [redacted-jwt]'] } });
    expect(JSON.parse(out.lines[1] ?? '{}')).toMatchObject({ err: { message: 'bad token [redacted-jwt]', type: 'Error' } });
  });
});
