import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { tlsListenerSchema } from '../../src/config/schema-mtls.js';
import { telemetrySchema } from '../../src/config/schema-telemetry.js';
import { problemLines } from '../fixtures/config-problems.js';
import { REPO_ROOT } from './envoy-shape.js';

export { REPO_ROOT };

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const obj = (v: unknown): Obj => (isObj(v) ? v : {});
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export const repoPath = (...parts: string[]): string => join(REPO_ROOT, ...parts);

/** Parses one YAML file of the repository (merge keys `<<` resolved, as Compose does). */
export function readYaml(...parts: string[]): Obj {
  return obj(parse(readFileSync(repoPath(...parts), 'utf8'), { merge: true }));
}

/** Every document of a multi-document YAML file, failing on any parse error. */
export function readYamlDocuments(...parts: string[]): Obj[] {
  const docs = parseAllDocuments(readFileSync(repoPath(...parts), 'utf8'));
  if (!Array.isArray(docs)) throw new Error('empty YAML');
  for (const d of docs) if (d.errors.length > 0) throw new Error(`${parts.join('/')}: ${d.errors[0]?.message}`);
  return docs.map((d) => obj(d.toJS())).filter((d) => Object.keys(d).length > 0);
}

export function listFiles(dir: string, ext: string): string[] {
  return readdirSync(repoPath(dir))
    .filter((f) => f.endsWith(ext))
    .sort();
}

/** `host:port` → parts. */
export function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

/** Walks every nested value; `visit` gets the key path and the value. */
export function walk(value: unknown, visit: (path: string, v: unknown) => void, path = ''): void {
  visit(path, value);
  if (Array.isArray(value)) value.forEach((v, i) => walk(v, visit, `${path}[${i}]`));
  else if (isObj(value)) for (const [k, v] of Object.entries(value)) walk(v, visit, path === '' ? k : `${path}.${k}`);
}

/** The SPIFFE identities scripts/gen-certs.sh issues, read from the script itself. */
export function genCertIdentities(): { name: string; spiffeId: string; dns: string[] }[] {
  const script = readFileSync(repoPath('scripts', 'gen-certs.sh'), 'utf8');
  const td = /TD=\$\{TRUST_DOMAIN:-([^}]+)\}/.exec(script)?.[1];
  const block = /IDENTITIES='([^']+)'/.exec(script)?.[1];
  if (!td || !block) throw new Error('gen-certs.sh: identities not found');
  return block
    .trim()
    .split('\n')
    .map((line) => {
      const [name = '', path = '', dns = ''] = line.split('|');
      return { name, spiffeId: `spiffe://${td}/${path}`, dns: dns.split(',').filter(Boolean) };
    });
}

/** Runs scripts/gen-certs.sh into a fresh temporary directory; returns the directory. */
export function runGenCerts(env: Record<string, string> = {}, dir?: string): { dir: string; output: string } {
  const out = dir ?? mkdtempSync(join(tmpdir(), 'entra-authz-certs-'));
  const output = execFileSync('sh', [repoPath('scripts', 'gen-certs.sh'), out], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { dir: out, output };
}

/**
 * Problems entra-authz's own schema finds in a configuration document (empty when valid).
 *
 * `server.tls` and `telemetry` are part of the server's contract but are being merged into the
 * main schema in parallel: when the main schema does not accept them yet, they are checked
 * against their own section schemas and the rest against the main schema, so the deploy configs
 * are held to the real rules either way.
 */
export function entraAuthzConfigProblems(doc: Obj): string[] {
  try {
    validateConfig(doc);
    return [];
  } catch (e) {
    problemLines(e); // rethrows anything that is not a ConfigError
    const { telemetry, ...rest } = doc;
    const { tls, ...server } = obj(rest['server']);
    const problems: string[] = [];
    try {
      validateConfig({ ...rest, server });
    } catch (e2) {
      problems.push(...problemLines(e2));
    }
    if (tls !== undefined) {
      const r = tlsListenerSchema.safeParse(tls);
      if (!r.success) problems.push(...r.error.issues.map((i) => `server.tls.${i.path.join('.')}: ${i.message}`));
    }
    const t = telemetrySchema.safeParse(telemetry ?? {});
    if (!t.success) problems.push(...t.error.issues.map((i) => `telemetry.${i.path.join('.')}: ${i.message}`));
    // Empty here means the main schema's only complaint was not knowing the two sections yet.
    return problems;
  }
}
