import { describe, expect, it } from 'vitest';
import { GC, RUNTIME, summarizeProfile, type CpuProfile } from '../../bench/cpu-profile.js';

const OWN = 'file:///app/node_modules/.cache/entra-authz-bench/src/';
const ownCode = (url: string): string | undefined => (url.startsWith(OWN) ? url.slice(OWN.length).replace(/\.js$/, '') : undefined);

/** A call tree: root → (idle), (garbage collector), event loop → grpc-js → handler → JSON.stringify; module loader → config. */
const nodes: CpuProfile['nodes'] = [
  { id: 1, callFrame: { functionName: '(root)', url: '' }, children: [2, 3, 4, 9] },
  { id: 2, callFrame: { functionName: '(idle)', url: '' } },
  { id: 3, callFrame: { functionName: '(garbage collector)', url: '' } },
  { id: 4, callFrame: { functionName: 'processTicksAndRejections', url: 'node:internal/process/task_queues' }, children: [5] },
  { id: 5, callFrame: { functionName: 'onStreamRead', url: 'file:///app/node_modules/@grpc/grpc-js/build/src/server.js' }, children: [6, 8] },
  { id: 6, callFrame: { functionName: 'check', url: `${OWN}server/grpc.js` }, children: [7] },
  { id: 7, callFrame: { functionName: 'stringify', url: '' } },
  { id: 8, callFrame: { functionName: 'respond', url: 'node:internal/http2/core' } },
  { id: 9, callFrame: { functionName: 'link', url: 'node:internal/modules/esm/module_job' }, children: [10] },
  { id: 10, callFrame: { functionName: 'parse', url: `${OWN}config/load.js` } },
];

const profile = (samples: number[]): CpuProfile => ({ nodes, samples, timeDeltas: samples.map(() => 100) });

describe('CPU profile summary', () => {
  it('counts natives for the module that called them and node internals for the package above them', () => {
    const summary = summarizeProfile(profile([7, 7, 7, 8, 5]), ownCode);
    expect(summary.owners).toEqual([
      { owner: 'server/grpc', micros: 300 },
      { owner: '@grpc/grpc-js', micros: 200 },
    ]);
    expect(summary.busyMicros).toBe(500);
  });

  it('keeps the garbage collector and the bare event loop apart, and leaves out idle time and module loading', () => {
    const summary = summarizeProfile(profile([2, 2, 3, 3, 4, 10]), ownCode);
    expect(summary.owners).toEqual([
      { owner: GC, micros: 200 },
      { owner: RUNTIME, micros: 100 },
    ]);
  });

  it('leaves out everything before the first sample of the serving module', () => {
    const summary = summarizeProfile(profile([3, 4, 8, 7, 7, 3]), ownCode, 'server/grpc');
    expect(summary.owners).toEqual([
      { owner: 'server/grpc', micros: 200 },
      { owner: GC, micros: 100 },
    ]);
  });

  it('counts nothing when the serving module never ran', () => {
    expect(summarizeProfile(profile([3, 4, 8]), ownCode, 'server/grpc')).toEqual({ busyMicros: 0, owners: [] });
  });
});
