/**
 * Reads a V8 CPU profile (`node --cpu-prof`) of a server and says where its time went, by owner:
 * each of entra-authz's modules, each package, the Node.js runtime, the garbage collector. Pure;
 * tested in test/bench/cpu-profile.test.ts.
 */

/** The parts of a `.cpuprofile` file this reads. */
export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string };
    readonly children?: readonly number[];
  }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Time spent under one owner. */
export interface OwnerTime {
  readonly owner: string;
  /** Microseconds of samples attributed to the owner. */
  readonly micros: number;
}

export interface ProfileSummary {
  /** Microseconds the process was busy (not idle, not loading modules). */
  readonly busyMicros: number;
  /** Busy time by owner, largest first. */
  readonly owners: readonly OwnerTime[];
}

export const GC = 'garbage collector';
export const RUNTIME = 'Node.js runtime (event loop, streams, timers)';
const STARTUP = 'start-up';
const IDLE = 'idle';

/**
 * The owner of a frame's url, or undefined for frames that belong to their caller: V8 builtins
 * and natives (no url: JSON, RegExp, hashing bindings) and Node.js internals called from a
 * module. `ownCode` maps a url inside the project to a module name (undefined when it is not).
 */
function ownerOfUrl(url: string, ownCode: (url: string) => string | undefined): string | undefined {
  if (url === '') return undefined;
  const own = ownCode(url);
  if (own !== undefined) return own;
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  return undefined;
}

/**
 * Attributes every sample to the nearest frame, from the sampled one outwards, that belongs to the
 * project or a package: a JSON.stringify in the audit module counts for the audit module, an http2
 * write under grpc-js for grpc-js. Samples with no such frame are the runtime's; module loading is
 * start-up and left out, like idle time. With `servingFrom` (an owner, e.g. the request handler's
 * module), every sample before the first one with that owner on its stack is start-up too.
 */
export function summarizeProfile(profile: CpuProfile, ownCode: (url: string) => string | undefined, servingFrom?: string): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const ownerCache = new Map<number, string>();
  const ownerOf = (id: number): string => {
    const cached = ownerCache.get(id);
    if (cached !== undefined) return cached;
    const leaf = byId.get(id)!.callFrame;
    let owner: string | undefined;
    if (leaf.functionName === '(idle)') owner = IDLE;
    else if (leaf.functionName === '(garbage collector)') owner = GC;
    // Code run while a module loads (its top level) is start-up, whoever owns it.
    for (let at: number | undefined = id; owner === undefined && at !== undefined; at = parent.get(at)) {
      if (byId.get(at)!.callFrame.url.startsWith('node:internal/modules/')) owner = STARTUP;
    }
    for (let at: number | undefined = id; owner === undefined && at !== undefined; at = parent.get(at)) {
      owner = ownerOfUrl(byId.get(at)!.callFrame.url, ownCode);
    }
    owner ??= RUNTIME;
    ownerCache.set(id, owner);
    return owner;
  };

  const onStack = (id: number, owner: string): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      if (ownerOfUrl(byId.get(at)!.callFrame.url, ownCode) === owner) return true;
    }
    return false;
  };
  const first = servingFrom === undefined ? 0 : profile.samples.findIndex((id) => onStack(id, servingFrom));
  const micros = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    if (first === -1 || i < first) return;
    // A sample's delta is the time since the previous one: the time this stack ran.
    const owner = ownerOf(id);
    micros.set(owner, (micros.get(owner) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  micros.delete(IDLE);
  micros.delete(STARTUP);
  const owners = [...micros].map(([owner, us]) => ({ owner, micros: us })).sort((a, b) => b.micros - a.micros);
  return { busyMicros: owners.reduce((sum, o) => sum + o.micros, 0), owners };
}
