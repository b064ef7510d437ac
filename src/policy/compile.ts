/**
 * Rules compiled once per configuration, so that a check does no parsing: hosts lower-cased and
 * split into exact names and suffixes, paths split into exact/prefix/gRPC-service lookups, roles,
 * scopes, app ids and tenants in Sets, labels for `explain` built up front.
 */
import { CLIENT_AUTHENTICATION, type Config, type Match, type Requirement, type RequirementAlternative, type Rule } from '../config/schema.js';
import { compileGrpc, compileHost, compilePrefix } from './patterns.js';
import { compileRulePeer, type CompiledPeerRequirement } from './peer.js';

export interface CompiledMatch {
  /** Every pair must be present with exactly this value. */
  readonly contextExtensions: readonly (readonly [string, string])[];
  /** Undefined: any host. */
  readonly hosts: { readonly exact: ReadonlySet<string>; readonly suffixes: readonly string[]; readonly label: string } | undefined;
  /** Undefined: any path. */
  readonly paths:
    | {
        /** Exact paths and gRPC methods (`/pkg.Svc/M`). */
        readonly exact: ReadonlySet<string>;
        /** Segment-aware prefixes without trailing `/` (`''` matches everything). */
        readonly prefixes: readonly string[];
        /** gRPC service prefixes `/pkg.Svc/`. */
        readonly grpcServices: ReadonlySet<string>;
        readonly label: string;
      }
    | undefined;
  /** Undefined: any method. Upper-case. */
  readonly methods: ReadonlySet<string> | undefined;
}

export interface CompiledValueCheck {
  readonly anyOf: ReadonlySet<string> | undefined;
  readonly allOf: readonly string[] | undefined;
  readonly anyLabel: string;
  readonly allLabel: string;
  /** Display labels by value (group and role ids), for explain and audit details. */
  readonly names: ReadonlyMap<string, string>;
}

/** One set of requirements that must all be met. */
export interface CompiledRequirementSet {
  readonly tokenType: 'app' | 'user' | undefined;
  readonly tenants: ReadonlySet<string> | undefined;
  readonly appIds: ReadonlySet<string> | undefined;
  readonly roles: CompiledValueCheck | undefined;
  readonly scopes: CompiledValueCheck | undefined;
  /** Group object ids, lower-case. */
  readonly groups: CompiledValueCheck | undefined;
  /** Directory role template ids, lower-case. */
  readonly directoryRoles: CompiledValueCheck | undefined;
  /** Weakest accepted `appidacr`/`azpacr` value (0 public, 1 secret, 2 certificate). */
  readonly clientAuthentication: number | undefined;
  readonly mfa: boolean;
  readonly authenticationContext: string | undefined;
  readonly peer: CompiledPeerRequirement | undefined;
  readonly labels: {
    readonly tokenType: string;
    readonly tenants: string;
    readonly appIds: string;
    readonly clientAuthentication: string;
  };
}

export interface CompiledRequirement extends CompiledRequirementSet {
  /** At least one must be met in full; empty means no alternatives. */
  readonly alternatives: readonly CompiledRequirementSet[];
}

export interface CompiledRule {
  /** Position in `rules` (0-based), for `rules[i]` references. */
  readonly index: number;
  readonly name: string;
  readonly description: string | undefined;
  readonly match: CompiledMatch;
  /** `allowAnonymous`: no credential is read at all. */
  readonly anonymous: boolean;
  /**
   * `required`: no token is `token_missing`. `optional` (a `peer.peerOnly` requirement, directly
   * or in an alternative): the peer may authenticate alone, but a token that is sent is verified
   * and must be valid. `none`: anonymous rules, which read no credential.
   */
  readonly token: 'required' | 'optional' | 'none';
  readonly requirement: CompiledRequirement;
  /** Every group id the rule names (lower-case): what a group-overage lookup asks about. */
  readonly groupIds: readonly string[];
  /** Effective dry-run: the rule's own setting, else the top-level one. */
  readonly dryRun: boolean;
  /** The rule as written (after defaults), for explain. */
  readonly source: Rule;
}

export interface CompiledPolicy {
  readonly rules: readonly CompiledRule[];
  /** Whether any rule matches on paths (then non-canonical paths are refused). */
  readonly matchesPaths: boolean;
  /** Top-level dry-run: also applies when no rule matches or the request is unreadable. */
  readonly dryRun: boolean;
}

const list = (values: Iterable<string>): string => `[${[...values].join(', ')}]`;

export function compileMatch(match: Match): CompiledMatch {
  let hosts: CompiledMatch['hosts'];
  if (match.hosts) {
    const exact = new Set<string>();
    const suffixes: string[] = [];
    for (const h of match.hosts) {
      const m = compileHost(h);
      if (m.kind === 'exact') exact.add(m.host);
      else suffixes.push(m.suffix);
    }
    hosts = { exact, suffixes, label: list(match.hosts.map((h) => h.toLowerCase())) };
  }

  let paths: CompiledMatch['paths'];
  if (match.paths) {
    const exact = new Set<string>();
    const prefixes: string[] = [];
    const grpcServices = new Set<string>();
    const labels: string[] = [];
    for (const p of match.paths) {
      if (p.exact !== undefined) {
        exact.add(p.exact);
        labels.push(`exact ${p.exact}`);
      } else if (p.prefix !== undefined) {
        prefixes.push(compilePrefix(p.prefix));
        labels.push(`prefix ${p.prefix}`);
      } else if (p.grpc !== undefined) {
        const g = compileGrpc(p.grpc);
        if (g.kind === 'method') exact.add(g.path);
        else grpcServices.add(g.prefix);
        labels.push(`grpc ${p.grpc}`);
      }
    }
    paths = { exact, prefixes, grpcServices, label: list(labels) };
  }

  return {
    contextExtensions: Object.entries(match.contextExtensions ?? {}),
    hosts,
    paths,
    methods: match.methods ? new Set(match.methods.map((m) => m.toUpperCase())) : undefined,
  };
}

function valueCheck(
  name: string,
  spec: { anyOf?: string[] | undefined; allOf?: string[] | undefined } | undefined,
  names: ReadonlyMap<string, string> = new Map(),
): CompiledValueCheck | undefined {
  if (!spec) return undefined;
  const shown = (values: string[]): string => list(values.map((v) => displayName(v, names)));
  return {
    anyOf: spec.anyOf ? new Set(spec.anyOf) : undefined,
    allOf: spec.allOf ? [...new Set(spec.allOf)] : undefined,
    anyLabel: spec.anyOf ? `${name} any of ${shown(spec.anyOf)}` : '',
    allLabel: spec.allOf ? `${name} all of ${shown(spec.allOf)}` : '',
    names,
  };
}

/** `Payments admins (0f8e…)` when the value has a label, else the value itself. */
export function displayName(value: string, names: ReadonlyMap<string, string>): string {
  const label = names.get(value);
  return label === undefined ? value : `${label} (${value})`;
}

type DirectoryObjects = Requirement['groups'];

/** Group or role ids (already lower-cased by the schema) with their labels. */
function directoryCheck(name: string, spec: DirectoryObjects): CompiledValueCheck | undefined {
  if (!spec) return undefined;
  const names = new Map<string, string>();
  for (const o of [...(spec.anyOf ?? []), ...(spec.allOf ?? [])]) if (o.label !== undefined) names.set(o.id, o.label);
  const ids = (objects: typeof spec.anyOf): string[] | undefined => objects?.map((o) => o.id);
  return valueCheck(name, { anyOf: ids(spec.anyOf), allOf: ids(spec.allOf) }, names);
}

function compileSet(set: RequirementAlternative | Requirement | undefined): CompiledRequirementSet {
  return {
    tokenType: set?.tokenType,
    tenants: set?.tenants ? new Set(set.tenants) : undefined,
    appIds: set?.appIds ? new Set(set.appIds) : undefined,
    roles: valueCheck('roles', set?.roles),
    scopes: valueCheck('scopes', set?.scopes),
    groups: directoryCheck('groups', set?.groups),
    directoryRoles: directoryCheck('directory roles', set?.directoryRoles),
    clientAuthentication: set?.clientAuthentication === undefined ? undefined : CLIENT_AUTHENTICATION.indexOf(set.clientAuthentication),
    mfa: set?.mfa === true,
    authenticationContext: set?.authenticationContext,
    peer: set?.peer ? compileRulePeer(set.peer) : undefined,
    labels: {
      tokenType: set?.tokenType ? `token type ${set.tokenType}` : '',
      tenants: set?.tenants ? `tenant any of ${list(set.tenants)}` : '',
      appIds: set?.appIds ? `calling app any of ${list(set.appIds)}` : '',
      clientAuthentication: set?.clientAuthentication ? `client authentication ${set.clientAuthentication} or stronger` : '',
    },
  };
}

export function compileRule(rule: Rule, index: number, globalDryRun: boolean): CompiledRule {
  const base = compileSet(rule.require);
  const alternatives = (rule.require?.anyOf ?? []).map(compileSet);
  return {
    index,
    name: rule.name,
    description: rule.description,
    match: compileMatch(rule.match),
    anonymous: rule.allowAnonymous,
    token: rule.allowAnonymous ? 'none' : base.peer?.peerOnly || alternatives.some((a) => a.peer?.peerOnly) ? 'optional' : 'required',
    requirement: { ...base, alternatives },
    groupIds: [...new Set([base, ...alternatives].flatMap((set) => [...(set.groups?.anyOf ?? []), ...(set.groups?.allOf ?? [])]))],
    dryRun: ruleDryRun(rule, globalDryRun),
    source: rule,
  };
}

/** Whether a rule only reports its denials: its own `dryRun`, else the top-level one. */
function ruleDryRun(rule: Rule, globalDryRun: boolean): boolean {
  return rule.dryRun ?? globalDryRun;
}

/** Where dry-run is active: top-level (also for requests no rule matches) and the rules in dry-run. */
export interface DryRunScope {
  /** Dry-run is active somewhere: top-level or on at least one rule. */
  readonly active: boolean;
  readonly global: boolean;
  readonly rules: readonly string[];
}

/** Where a configuration lets would-be denials through. */
export function dryRunScope(config: Pick<Config, 'rules' | 'dryRun'>): DryRunScope {
  const rules = config.rules.filter((r) => ruleDryRun(r, config.dryRun)).map((r) => r.name);
  return { active: config.dryRun || rules.length > 0, global: config.dryRun, rules };
}

/** Compiles the rules of a validated configuration. Pure; call once per configuration. */
export function compilePolicy(config: Pick<Config, 'rules' | 'dryRun'>): CompiledPolicy {
  const rules = config.rules.map((r, i) => compileRule(r, i, config.dryRun));
  return Object.freeze({
    rules: Object.freeze(rules),
    matchesPaths: rules.some((r) => r.match.paths !== undefined),
    dryRun: config.dryRun,
  });
}
