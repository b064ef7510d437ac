import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { dryRunScope } from '../../src/policy/compile.js';
import { createRuntime } from '../../src/runtime/compose.js';
import { createMetrics, METRIC } from '../../src/telemetry/metrics.js';
import { NOOP_CHECK_TRACER } from '../../src/telemetry/tracing.js';
import { harnessConfig } from '../support/harness.js';

// Keys are never fetched here: the runtime is built and reloaded, never started.
const config = (over: { dryRun?: boolean; ruleDryRun?: boolean } = {}): Config => {
  const base = harnessConfig('http://127.0.0.1:9', {
    rules: [
      {
        name: 'orders',
        match: { paths: [{ prefix: '/orders' }] },
        require: { roles: { anyOf: ['Orders.Read'] } },
        ...(over.ruleDryRun !== undefined ? { dryRun: over.ruleDryRun } : {}),
      },
      { name: 'admin', require: { roles: { anyOf: ['Orders.Admin'] } } },
    ],
  });
  return { ...base, dryRun: over.dryRun ?? false };
};

async function runtimeWith(initial: Config) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const metrics = createMetrics({ processMetrics: false });
  const runtime = await createRuntime(initial, {
    log,
    telemetry: { checks: NOOP_CHECK_TRACER, recordDecision: () => undefined, onKeyFetch: () => undefined, metrics },
  });
  const gauge = async (): Promise<number> => (await metrics.registry.getSingleMetric(METRIC.dryRunActive)!.get()).values[0]?.value ?? NaN;
  const warnings = () => lines.filter((l) => l['level'] === 40 && String(l['msg']).startsWith('dry-run is active'));
  return { runtime, gauge, warnings };
}

describe('dry-run is never silent', () => {
  it('names where dry-run is active: top-level, a rule, or nowhere', () => {
    expect(dryRunScope(config())).toEqual({ active: false, global: false, rules: [] });
    expect(dryRunScope(config({ ruleDryRun: true }))).toEqual({ active: true, global: false, rules: ['orders'] });
    expect(dryRunScope(config({ dryRun: true, ruleDryRun: false }))).toEqual({ active: true, global: true, rules: ['admin'] });
  });

  it('warns at start and exports the gauge at 1 when a rule is in dry-run', async () => {
    const { runtime, gauge, warnings } = await runtimeWith(config({ ruleDryRun: true }));
    expect(warnings()).toMatchObject([{ when: 'start', dryRun: false, dryRunRules: ['orders'] }]);
    expect(await gauge()).toBe(1);
    runtime.close();
  });

  it('stays quiet with the gauge at 0 without dry-run, and warns again when a reload turns it on, then off', async () => {
    const { runtime, gauge, warnings } = await runtimeWith(config());
    expect(warnings()).toEqual([]);
    expect(await gauge()).toBe(0);

    await runtime.reload(config({ dryRun: true }));
    expect(warnings()).toMatchObject([{ when: 'reload', dryRun: true, dryRunRules: ['orders', 'admin'] }]);
    expect(await gauge()).toBe(1);

    await runtime.reload(config());
    expect(warnings()).toHaveLength(1);
    expect(await gauge()).toBe(0);
    runtime.close();
  });
});
