import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { arr, isObj, listFiles, obj, readYaml, readYamlDocuments, repoPath, walk, type Obj } from '../deploy/helpers.js';
import { requireBinary } from '../support/external-binary.js';
import { writeDemoPki } from './pki.js';
import { validateWithEnvoy } from './processes.js';
import { renderCertificatePaths } from './render.js';

/**
 * `envoy --mode validate` — the pinned Envoy's own config loading, short of binding sockets — on
 * every Envoy configuration the project ships or shows: envoy/*.yaml, the file the compose stack
 * mounts, Envoy bootstraps in Kubernetes ConfigMaps, and the docs' Envoy snippets (embedded in
 * the smallest bootstrap that holds them). Certificate paths point at files the test generates.
 */
const envoy = requireBinary('envoy');

const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const isHttpFilter = (v: unknown): boolean => isObj(v) && String(v['name']).startsWith('envoy.filters.http.');
const isCluster = (v: unknown): boolean => isObj(v) && ['load_assignment', 'transport_socket', 'typed_extension_protocol_options', 'connect_timeout'].some((k) => k in v);

/** The smallest bootstrap holding HTTP filters and clusters from a snippet; referenced clusters exist. */
function bootstrapAround(filters: unknown[], clusters: Obj[]): Obj {
  const doc: Obj = {
    static_resources: {
      listeners: [
        {
          name: 'docs',
          address: { socket_address: { address: '127.0.0.1', port_value: 10000 } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'docs',
                    route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200 } }] }] },
                    http_filters: [...filters, ROUTER],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters,
    },
  };
  const defined = new Set(clusters.map((c) => String(c['name'])));
  walk(doc, (path, v) => {
    if (path.endsWith('envoy_grpc.cluster_name') && typeof v === 'string' && !defined.has(v)) {
      defined.add(v);
      clusters.push({ name: v, connect_timeout: '1s', typed_extension_protocol_options: obj(clusters[0]?.['typed_extension_protocol_options']), load_assignment: { cluster_name: v } });
    }
  });
  for (const c of clusters) if (Object.keys(obj(c['typed_extension_protocol_options'])).length === 0) delete c['typed_extension_protocol_options'];
  return doc;
}

/** A snippet's certificate files mapped onto the generated demo files by role. */
function snippetCertificates(doc: Obj, certDir: string): void {
  walk(doc, (_p, v) => {
    const holder = obj(v);
    const file = holder['filename'];
    if (typeof file !== 'string' || file.startsWith('/certs/')) return;
    holder['filename'] = join(certDir, /ca\.(crt|pem)$/.test(file) ? 'ca.crt' : file.endsWith('.key') ? 'envoy.key' : 'envoy.crt');
  });
}

function dropEllipses(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => v !== '…' && v !== '...').map(dropEllipses);
  if (isObj(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, dropEllipses(v)]));
  return value;
}

/** Envoy configurations shown in README.md and docs/*.md, as bootstraps. */
function docSnippets(): { name: string; doc: Obj }[] {
  const out: { name: string; doc: Obj }[] = [];
  const files = ['README.md', ...listFiles('docs', '.md').map((f) => `docs/${f}`)];
  for (const file of files) {
    const text = readFileSync(repoPath(file), 'utf8');
    for (const m of text.matchAll(/```ya?ml\n([\s\S]*?)```/g)) {
      const source = m[1] ?? '';
      const code = source.split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');
      if (!code.includes('type.googleapis.com/envoy.')) continue;
      const line = text.slice(0, m.index).split('\n').length;
      // A list item written as "…" means "and the rest": left out, the rest is checked.
      const parsed: unknown = dropEllipses(parse(source));
      const name = `${file}:${line}`;
      if (isObj(parsed) && 'static_resources' in parsed) out.push({ name, doc: parsed });
      else if (isObj(parsed) && ('http_filters' in parsed || 'clusters' in parsed)) {
        out.push({ name, doc: bootstrapAround(arr(parsed['http_filters']), arr(parsed['clusters']).map(obj)) });
      } else if (Array.isArray(parsed) && parsed.every(isHttpFilter)) out.push({ name, doc: bootstrapAround(parsed, []) });
      else if (Array.isArray(parsed) && parsed.every(isCluster)) out.push({ name, doc: bootstrapAround([], parsed.map(obj)) });
      else throw new Error(`${name}: an Envoy snippet this test cannot place; give it a shape it knows`);
    }
  }
  return out;
}

/** Envoy bootstraps carried in ConfigMaps under deploy/ (any data value with static_resources). */
function configMapBootstraps(): { name: string; doc: Obj }[] {
  const out: { name: string; doc: Obj }[] = [];
  const scan = (dir: string): void => {
    for (const file of listFiles(dir, '.yaml')) {
      for (const d of readYamlDocuments(dir, file)) {
        if (d['kind'] !== 'ConfigMap') continue;
        for (const [key, value] of Object.entries(obj(d['data']))) {
          const parsed: unknown = typeof value === 'string' ? parse(value) : undefined;
          if (isObj(parsed) && 'static_resources' in parsed) out.push({ name: `${dir}/${file} ${key}`, doc: parsed });
        }
      }
    }
  };
  for (const dir of ['deploy/kubernetes', 'deploy/istio']) scan(dir);
  return out;
}

/** envoy/ files the compose stack mounts into its Envoy container. */
function composeEnvoyFiles(): string[] {
  const services = obj(readYaml('docker-compose.yml')['services']);
  const files = Object.values(services)
    .map(obj)
    .filter((svc) => String(svc['image']).startsWith('envoyproxy/envoy'))
    .flatMap((svc) => arr(svc['volumes']).map(String))
    .map((v) => /^\.\/(envoy\/[^:]+\.yaml):/.exec(v)?.[1])
    .filter((f): f is string => f !== undefined);
  return [...new Set(files)];
}

describe.skipIf(envoy.skip)('the pinned Envoy accepts every Envoy configuration the project ships or shows', () => {
  let certDir: string;
  beforeAll(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'entra-authz-validate-'));
    await writeDemoPki(certDir);
  });
  afterAll(() => rmSync(certDir, { recursive: true, force: true }));

  const expectValid = async (doc: Obj): Promise<void> => {
    const result = await validateWithEnvoy(envoy.path ?? '', doc);
    expect(result.output).toContain('OK');
    expect(result.code).toBe(0);
  };

  it.each(listFiles('envoy', '.yaml'))('envoy/%s', async (file) => {
    await expectValid(renderCertificatePaths(readYaml('envoy', file), certDir));
  });

  it('the compose stack mounts only configs from envoy/, and each is accepted', async () => {
    const files = composeEnvoyFiles();
    expect(files).toEqual(['envoy/envoy.yaml']);
    for (const file of files) await expectValid(renderCertificatePaths(readYaml(file), certDir));
  });

  // deploy/ has none today (in Kubernetes Envoy comes from the mesh); any that is added is checked.
  it.each(configMapBootstraps().map((c) => [c.name, c.doc] as const))('the ConfigMap bootstrap %s', async (_name, doc) => {
    await expectValid(renderCertificatePaths(doc, certDir));
  });

  it.each(docSnippets().map((s) => [s.name, s.doc] as const))('the snippet at %s', async (_name, doc) => {
    snippetCertificates(doc, certDir);
    await expectValid(renderCertificatePaths(doc, certDir));
  });

  it('refuses a config Envoy 1.40 cannot load, so the checks above can fail', async () => {
    const doc = readYaml('envoy', 'sidecar.yaml');
    obj(arr(obj(doc['static_resources'])['clusters'])[0])['lb_policy'] = 'NOT_A_POLICY';
    const result = await validateWithEnvoy(envoy.path ?? '', renderCertificatePaths(doc, certDir));
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/NOT_A_POLICY/);
  });
});
