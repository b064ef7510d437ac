/**
 * Checks across rules that a per-field schema cannot express: duplicate names, tenants a rule
 * names but `entra.tenants` never accepts, and rules that can never be reached because an earlier
 * rule matches every request they match (first match wins). Run at load, after the schema.
 */
import type { Config, Match } from '../config/schema.js';
import { compileMatch, type CompiledMatch } from './compile.js';
import { compileGrpc, compilePrefix, grpcServicePrefix, prefixMatches } from './patterns.js';

export interface RuleProblem {
  readonly path: string;
  readonly message: string;
}

function hostCovered(a: NonNullable<CompiledMatch['hosts']>, host: string, wildcard: boolean): boolean {
  // `host` is an exact name, or (wildcard) a suffix such as `.example.com`.
  if (!wildcard && a.exact.has(host)) return true;
  return a.suffixes.some((s) => host === s || (host.endsWith(s) && host.length > s.length));
}

function exactPathCovered(a: NonNullable<CompiledMatch['paths']>, path: string): boolean {
  if (a.exact.has(path)) return true;
  const svc = grpcServicePrefix(path);
  if (svc !== '' && a.grpcServices.has(svc)) return true;
  return a.prefixes.some((p) => prefixMatches(p, path));
}

/**
 * Whether every request matched by `b` is also matched by `a`. Sound but not complete: `true`
 * is always right; some covered pairs (e.g. two prefixes that together cover a third) say false.
 */
export function matchCovers(a: Match, b: Match): boolean {
  const ca = compileMatch(a);
  for (const [key, value] of ca.contextExtensions) {
    if (b.contextExtensions === undefined || !Object.hasOwn(b.contextExtensions, key) || b.contextExtensions[key] !== value) return false;
  }
  if (ca.hosts) {
    if (!b.hosts) return false;
    for (const h of b.hosts.map((x) => x.toLowerCase())) {
      if (!(h.startsWith('*.') ? hostCovered(ca.hosts, h.slice(1), true) : hostCovered(ca.hosts, h, false))) return false;
    }
  }
  if (ca.methods) {
    if (!b.methods) return false;
    if (!b.methods.every((m) => ca.methods?.has(m.toUpperCase()))) return false;
  }
  if (ca.paths) {
    if (!b.paths) return false;
    const paths = ca.paths;
    for (const p of b.paths) {
      let covered = false;
      if (p.exact !== undefined) covered = exactPathCovered(paths, p.exact);
      else if (p.prefix !== undefined) {
        const q = compilePrefix(p.prefix);
        covered = paths.prefixes.some((x) => prefixMatches(x, q));
      } else if (p.grpc !== undefined) {
        const g = compileGrpc(p.grpc);
        if (g.kind === 'method') covered = exactPathCovered(paths, g.path);
        else covered = paths.grpcServices.has(g.prefix) || paths.prefixes.some((x) => prefixMatches(x, g.prefix.slice(0, -1)));
      }
      if (!covered) return false;
    }
  }
  return true;
}

/** Every cross-rule problem, each with the path of the offending value. */
export function ruleProblems(config: Pick<Config, 'rules' | 'entra'>): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const names = new Map<string, number>();
  const accepted = new Set(config.entra.tenants);

  config.rules.forEach((rule, i) => {
    const first = names.get(rule.name);
    if (first !== undefined) problems.push({ path: `rules[${i}].name`, message: `duplicate rule name "${rule.name}" (also rules[${first}])` });
    else names.set(rule.name, i);

    const tenantLists: [string, readonly string[] | undefined][] = [
      [`rules[${i}].require.tenants`, rule.require?.tenants],
      ...(rule.require?.anyOf ?? []).map((alt, j): [string, readonly string[] | undefined] => [`rules[${i}].require.anyOf[${j}].tenants`, alt.tenants]),
    ];
    for (const [path, tenants] of tenantLists) {
      tenants?.forEach((t, k) => {
        if (!accepted.has(t)) problems.push({ path: `${path}[${k}]`, message: `tenant ${t} is not in entra.tenants, so its tokens are refused before any rule` });
      });
    }

    for (let j = 0; j < i; j++) {
      const earlier = config.rules[j];
      if (earlier && matchCovers(earlier.match, rule.match)) {
        problems.push({
          path: `rules[${i}]`,
          message: `rule "${rule.name}" is unreachable: rules[${j}] "${earlier.name}" matches every request it matches, and the first match decides`,
        });
        break;
      }
    }
  });
  return problems;
}
