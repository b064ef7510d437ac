import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { createConfigHolder, createConfigWatcher, entraChanged, type WatchFn } from '../../src/config/reload.js';
import type { Config } from '../../src/config/schema.js';
import type { CheckOutcome } from '../../src/core/outcome.js';
import type { TokenVerifier, VerifyResult } from '../../src/core/verifier.js';
import { createDecider } from '../../src/engine/decide.js';
import { decideCheckRequest } from '../support/decide.js';
import { tokenIdentity } from '../fixtures/identity.js';

const TENANT = '11111111-1111-4111-8111-111111111111';
const fileWith = (role: string, audience = 'api://orders'): string =>
  `entra:\n  tenants: [${TENANT}]\n  audiences: [${audience}]\nrules:\n  - name: orders\n    require: { roles: { anyOf: [${role}] } }\n`;

/** An in-memory file system with one file, and a watch that tests fire by hand. */
function fakeFs(initial: string) {
  let text = initial;
  const listeners = new Set<(event: string, filename: string | null) => void>();
  let closed = 0;
  const watch: WatchFn = (_dir, listener) => {
    listeners.add(listener);
    return { close: () => void (closed++, listeners.delete(listener)) };
  };
  return {
    watch,
    readFile: async () => text,
    write(next: string, filename: string | null = 'config.yaml') {
      text = next;
      for (const l of listeners) l('change', filename);
    },
    get closed() {
      return closed;
    },
  };
}

function setup(initial = fileWith('Orders.Read'), debounceMs = 0) {
  const fs = fakeFs(initial);
  const sighup = new EventEmitter();
  const applied: Config[] = [];
  const errors: Error[] = [];
  const watcher = createConfigWatcher({
    path: '/etc/entra-authz/config.yaml',
    watch: fs.watch,
    readFile: fs.readFile,
    sighup: sighup as never,
    env: {},
    debounceMs,
    initialText: initial,
    onChange: (c) => void applied.push(c),
    onError: (e) => void errors.push(e),
  });
  return { fs, sighup, applied, errors, watcher };
}

describe('config watcher', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('applies a valid new file', async () => {
    const { fs, applied, errors, watcher } = setup();
    fs.write(fileWith('Orders.Write'));
    await watcher.settled();
    expect(errors).toEqual([]);
    expect(applied.map((c) => c.rules[0]?.require?.roles?.anyOf)).toEqual([['Orders.Write']]);
    watcher.close();
  });

  it('keeps the running config when the new file is invalid, reporting every problem with its path', async () => {
    const { fs, applied, errors, watcher } = setup();
    fs.write(fileWith('Orders.Write').replace('rules:', 'rulez:'));
    await watcher.settled();
    expect(applied).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ConfigError);
    // The unknown key where it is written, and the missing one.
    expect((errors[0] as ConfigError).problems.map((p) => p.path)).toEqual(expect.arrayContaining(['rulez', 'rules']));
    // A later valid file is applied.
    fs.write(fileWith('Orders.Admin'));
    await watcher.settled();
    expect(applied).toHaveLength(1);
    watcher.close();
  });

  it('ignores events that leave the content unchanged, but SIGHUP always reloads', async () => {
    const { fs, sighup, applied, watcher } = setup();
    fs.write(fileWith('Orders.Read'));
    fs.write(fileWith('Orders.Read'), '..data');
    await watcher.settled();
    expect(applied).toEqual([]);
    sighup.emit('SIGHUP');
    await watcher.settled();
    expect(applied).toHaveLength(1);
    watcher.close();
  });

  it('SIGHUP with an invalid file reports and keeps the running config', async () => {
    const { fs, sighup, applied, errors, watcher } = setup();
    fs.write('entra: [');
    errors.length = 0;
    sighup.emit('SIGHUP');
    await watcher.settled();
    expect(applied).toEqual([]);
    expect(errors.length).toBeGreaterThan(0);
    watcher.close();
  });

  it('coalesces a burst of events into one reload of the final content (debounced)', async () => {
    vi.useFakeTimers();
    const { fs, applied, errors, watcher } = setup(fileWith('Orders.Read'), 200);
    fs.write('');
    fs.write('entra:\n  tenants: [');
    fs.write(fileWith('Orders.Write'));
    await vi.advanceTimersByTimeAsync(200);
    await watcher.settled();
    expect(errors).toEqual([]);
    expect(applied.map((c) => c.rules[0]?.require?.roles?.anyOf)).toEqual([['Orders.Write']]);
    watcher.close();
  });

  it('a failing onChange counts as not applied and is reported', async () => {
    const fs = fakeFs(fileWith('A'));
    const errors: Error[] = [];
    let calls = 0;
    const watcher = createConfigWatcher({
      path: '/x/config.yaml',
      watch: fs.watch,
      readFile: fs.readFile,
      sighup: false,
      env: {},
      debounceMs: 0,
      initialText: fileWith('A'),
      onChange: () => {
        calls++;
        if (calls === 1) throw new Error('key store refused');
      },
      onError: (e) => void errors.push(e),
    });
    fs.write(fileWith('B'));
    await watcher.settled();
    expect(errors.map((e) => e.message)).toEqual(['key store refused']);
    // Same content again: retried, because it was never applied.
    fs.write(fileWith('B'));
    await watcher.settled();
    expect(calls).toBe(2);
    watcher.close();
  });

  it('stops on close and on abort', async () => {
    const controller = new AbortController();
    const fs = fakeFs(fileWith('A'));
    const sighup = new EventEmitter();
    const applied: Config[] = [];
    createConfigWatcher({
      path: '/x/config.yaml',
      watch: fs.watch,
      readFile: fs.readFile,
      sighup: sighup as never,
      env: {},
      debounceMs: 0,
      signal: controller.signal,
      onChange: (c) => void applied.push(c),
      onError: () => {},
    });
    controller.abort();
    expect(fs.closed).toBe(1);
    expect(sighup.listenerCount('SIGHUP')).toBe(0);
    fs.write(fileWith('B'));
    sighup.emit('SIGHUP');
    await Promise.resolve();
    expect(applied).toEqual([]);
  });

  it('tells whether the entra section changed (key store rebuild)', () => {
    const a = parseConfig(fileWith('A'), 'a', { env: {} });
    expect(entraChanged(a, parseConfig(fileWith('B'), 'b', { env: {} }))).toBe(false);
    expect(entraChanged(a, parseConfig(fileWith('A', 'api://other'), 'c', { env: {} }))).toBe(true);
  });
});

describe('atomic swap', () => {
  it('checks in flight finish on the config they started with; later checks see the new one', async () => {
    // A verifier whose answers the test releases by hand: a check can be held "in flight".
    const pending: ((r: VerifyResult) => void)[] = [];
    const verifier: TokenVerifier = { verify: () => new Promise((resolve) => pending.push(resolve)) };
    const id = tokenIdentity({ tid: TENANT, roles: ['Orders.Read'] });
    const build = (config: Config) => ({ config, decide: createDecider({ config, verifier, newId: () => 'x' }) });

    const fs = fakeFs(fileWith('Orders.Read'));
    const holder = createConfigHolder(build(parseConfig(fileWith('Orders.Read'), 'c', { env: {} })));
    const watcher = createConfigWatcher({
      path: '/x/config.yaml',
      watch: fs.watch,
      readFile: fs.readFile,
      sighup: false,
      env: {},
      debounceMs: 0,
      initialText: fileWith('Orders.Read'),
      onChange: (config) => void holder.replace(build(config)),
      onError: (e) => {
        throw e;
      },
    });

    // The server takes one snapshot per check.
    const check = (): Promise<CheckOutcome> => decideCheckRequest(holder.current().decide, envoyCheckRequest({ token: 'tok' }));
    const inFlight = check();
    // The decider reaches the verifier synchronously: the check is now held in flight.
    expect(pending).toHaveLength(1);

    fs.write(fileWith('Orders.Write'));
    await watcher.settled();
    const after = check();
    expect(pending).toHaveLength(2);
    for (const resolve of pending) resolve({ ok: true, identity: id });

    expect((await inFlight).decision).toMatchObject({ kind: 'allow', reason: 'allowed' });
    expect((await after).decision).toMatchObject({ kind: 'deny', reason: 'missing_role' });
    watcher.close();
  });
});
