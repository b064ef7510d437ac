import { credentials } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planResponse } from '../../src/core/response.js';
import { DEMO } from '../../src/dev/emulator.js';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { validateConfig } from '../../src/config/load.js';
import { DEFAULT_REQUEST_LIMITS } from '../../src/core/request.js';
import type { Runtime, RuntimeTelemetry } from '../../src/runtime/compose.js';
import { startGrpcServer } from '../../src/server/grpc.js';
import { createAuthorizationClient } from '../../src/server/protos.js';
import { NOOP_CHECK_TRACER } from '../../src/telemetry/tracing.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

/** Operational log lines (pino JSON), parsed. */
function memoryLog(): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  return {
    log: pino({ level: 'info' }, { write: (line: string) => void raw.push(line) }),
    lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Ids handed out in order, so the error path's id can be told apart from a random one. */
function sequentialIds(): () => string {
  let n = 0;
  return () => `decision-${++n}`;
}

const quietTelemetry = (recordDecision: RuntimeTelemetry['recordDecision']): RuntimeTelemetry => ({
  checks: NOOP_CHECK_TRACER,
  recordDecision,
  onKeyFetch: () => undefined,
  metrics: { observeKeySets: () => undefined, observeDryRun: () => undefined },
});

describe('a check that fails after the decision still fails closed', () => {
  let h: Harness | undefined;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    process.off('unhandledRejection', onUnhandled);
    await h?.close();
    h = undefined;
  });

  it('denies with 500 internal_error, logs one line and keeps serving when the response planner throws', async () => {
    const { log, lines } = memoryLog();
    let failNext = true;
    h = await startHarness({
      deps: {
        log,
        newId: sequentialIds(),
        planResponse: (...args) => {
          if (failNext) {
            failNext = false;
            throw new Error('planner broke');
          }
          return planResponse(...args);
        },
      },
    });
    await h.waitServing();
    const token = await h.emulator.issueToken({ appId: DEMO.clients.reader.clientId });

    const d = denial(await h.check({ token, path: '/orders' }));
    expect(d).toMatchObject({ reason: 'internal_error', httpStatus: 'InternalServerError' });
    // The first id went to the decision that could not be planned; the deny has its own, injected one.
    expect(d.headers['x-entra-decision-id']).toBe('decision-2');
    expect(lines().filter((l) => l['msg'] === 'check failed unexpectedly; denied')).toEqual([
      expect.objectContaining({ level: 50, decisionId: 'decision-2', error: 'Error' }),
    ]);

    allowance(await h.check({ token, path: '/orders' }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });

  it('denies an otherwise allowed check, logs one line and keeps serving when the telemetry sink throws', async () => {
    const { log, lines } = memoryLog();
    let calls = 0;
    h = await startHarness({
      deps: {
        log,
        newId: sequentialIds(),
        telemetry: quietTelemetry(() => {
          calls++;
          throw new Error('audit sink broke');
        }),
      },
    });
    await h.waitServing();
    const token = await h.emulator.issueToken({ appId: DEMO.clients.reader.clientId });

    const d = denial(await h.check({ token, path: '/orders' }));
    expect(d).toMatchObject({ reason: 'internal_error', httpStatus: 'InternalServerError' });
    expect(d.body).toMatchObject({ error: 'internal_error', decision_id: 'decision-2' });
    // The deny is offered to telemetry too; its failure there changes nothing.
    expect(calls).toBe(2);
    expect(lines().filter((l) => l['msg'] === 'check failed unexpectedly; denied')).toHaveLength(1);

    const again = denial(await h.check({ token, path: '/orders' }));
    expect(again.headers['x-entra-decision-id']).toBe('decision-4');
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });
});

describe('the gRPC adapter', () => {
  it('answers a deny, not a failed RPC, when the runtime itself fails, and logs one line', async () => {
    const { log, lines } = memoryLog();
    const config = validateConfig({
      server: { listen: '127.0.0.1:0' },
      entra: { authority: 'http://127.0.0.1:9', tenants: [DEMO.tenantId], audiences: [DEMO.api.appId] },
      rules: [{ name: 'all', require: { roles: { anyOf: ['Orders.Read'] } } }],
    });
    // A runtime whose check rejects: what the adapter must survive even though the real one never does.
    const broken: Pick<Runtime, 'current' | 'isServing' | 'onServingChange'> = {
      current: () => ({ config, limits: DEFAULT_REQUEST_LIMITS, check: () => Promise.reject(new TypeError('broken runtime')) }),
      isServing: () => true,
      onServingChange: () => undefined,
    };
    const server = await startGrpcServer(broken, config.server, { log });
    const client = createAuthorizationClient(server.address, credentials.createInsecure());
    try {
      const response = await new Promise<Record<string, unknown> | undefined>((resolve, reject) => {
        client.Check(envoyCheckRequest({ path: '/orders' }), (err, res) => (err ? reject(err) : resolve(res)));
      });
      expect(response).toMatchObject({ status: { code: 13, message: 'internal_error' }, denied_response: { status: { code: 'InternalServerError' } } });
      expect(lines().filter((l) => l['msg'] === 'Check answer could not be built; denied')).toEqual([expect.objectContaining({ error: 'TypeError' })]);
    } finally {
      client.close();
      await server.close(500);
    }
  });
});
