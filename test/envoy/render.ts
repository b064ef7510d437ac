import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse } from 'yaml';
import { arr, obj, repoPath, walk, type Obj } from '../deploy/helpers.js';

export interface RenderOptions {
  /** Directory holding the files the config names under `/certs/` (same base names). */
  readonly certDir: string;
  /** Loopback port of every cluster's single endpoint, by cluster name. */
  readonly clusterPorts: Readonly<Record<string, number>>;
  /** Admin's port; default 0 (read it from `--admin-address-path`). */
  readonly adminPort?: number;
}

/** Where a shipped config mounts certificates (docker-compose.yml, deploy/). */
const CERT_MOUNT = '/certs/';

/**
 * A shipped Envoy config made runnable on loopback, changing only ports and certificate paths:
 * admin and every listener bind 127.0.0.1 port 0 (admin: `adminPort` when given) (read the real ports from admin), each cluster's
 * endpoint becomes 127.0.0.1 and the given port, `/certs/x` becomes `<certDir>/x`. Everything else
 * — filters, routes, timeouts, TLS settings — is exactly as shipped.
 */
export function renderEnvoyConfig(file: string, options: RenderOptions): Obj {
  const doc = obj(parse(readFileSync(repoPath('envoy', file), 'utf8')));
  return renderEnvoyDocument(doc, options);
}

export function renderEnvoyDocument(doc: Obj, options: RenderOptions): Obj {
  const loopback = (port: number): Obj => ({ socket_address: { address: '127.0.0.1', port_value: port } });
  obj(doc['admin'])['address'] = loopback(options.adminPort ?? 0);
  const resources = obj(doc['static_resources']);
  for (const listener of arr(resources['listeners']).map(obj)) listener['address'] = loopback(0);
  for (const cluster of arr(resources['clusters']).map(obj)) {
    const name = String(cluster['name']);
    const port = options.clusterPorts[name];
    if (port === undefined) throw new Error(`no port given for cluster ${name}`);
    for (const group of arr(obj(cluster['load_assignment'])['endpoints']).map(obj)) {
      for (const lb of arr(group['lb_endpoints']).map(obj)) obj(lb['endpoint'])['address'] = loopback(port);
    }
  }
  return renderCertificatePaths(doc, options.certDir);
}

/** `/certs/x` → `<certDir>/x` everywhere in a config; nothing else changes. */
export function renderCertificatePaths(doc: Obj, certDir: string): Obj {
  walk(doc, (_path, value) => {
    const holder = obj(value);
    const filename = holder['filename'];
    if (typeof filename === 'string' && filename.startsWith(CERT_MOUNT)) holder['filename'] = join(certDir, basename(filename));
  });
  return doc;
}

/** The `typed_config` of the named HTTP filter in the first listener's connection manager. */
export function httpFilterConfig(doc: Obj, filterName: string): Obj {
  const listener = obj(arr(obj(doc['static_resources'])['listeners'])[0]);
  const hcm = obj(obj(arr(obj(arr(listener['filter_chains'])[0])['filters'])[0])['typed_config']);
  const filter = arr(hcm['http_filters']).map(obj).find((f) => f['name'] === filterName);
  if (!filter) throw new Error(`no HTTP filter ${filterName}`);
  return obj(filter['typed_config']);
}
