import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { arr, entraAuthzConfigProblems, hostPort, listFiles, obj, readYaml, readYamlDocuments, repoPath, type Obj } from './helpers.js';

const K8S = 'deploy/kubernetes';
const ISTIO = 'deploy/istio';

const docsOf = (dir: string): Obj[] => listFiles(dir, '.yaml').flatMap((f) => readYamlDocuments(dir, f).map((d) => ({ ...d, __file: f })));
const find = (docs: Obj[], kind: string, name?: string): Obj => {
  const d = docs.find((x) => x['kind'] === kind && (name === undefined || obj(x['metadata'])['name'] === name));
  if (!d) throw new Error(`no ${kind} ${name ?? ''}`);
  return d;
};

const k8s = docsOf(K8S);
const deployment = find(k8s, 'Deployment', 'entra-authz');
const podSpec = obj(obj(obj(deployment['spec'])['template'])['spec']);
const podLabels = obj(obj(obj(obj(deployment['spec'])['template'])['metadata'])['labels']);
const container = obj(arr(podSpec['containers'])[0]);
const containerPorts = Object.fromEntries(arr(container['ports']).map((p) => [String(obj(p)['name']), Number(obj(p)['containerPort'])]));
const portNumber = (p: unknown): number => (typeof p === 'number' ? p : (containerPorts[String(p)] ?? NaN));
const configText = (cm: Obj): string => String(obj(cm['data'])['config.yaml']);
const baseConfig = obj(parse(configText(find(k8s, 'ConfigMap', 'entra-authz-config'))));

const matches = (selector: Obj, labels: Obj): boolean =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** A Kubernetes label selector (`matchLabels` and `matchExpressions`) applied to a label set. */
function selects(selector: Obj, labels: Obj): boolean {
  const byLabels = Object.entries(obj(selector['matchLabels'])).every(([k, v]) => labels[k] === v);
  const byExpressions = arr(selector['matchExpressions']).every((e) => {
    const { key, operator, values } = obj(e);
    const has = Object.hasOwn(labels, String(key));
    const among = arr(values).includes(labels[String(key)]);
    return { In: has && among, NotIn: !among, Exists: has, DoesNotExist: !has }[String(operator)] ?? false;
  });
  return byLabels && byExpressions;
}

/** Whether a NetworkPolicy lets a pod of a namespace with `namespaceLabels` reach `port`. */
function networkPolicyAdmits(policy: Obj, namespaceLabels: Obj, port: number): boolean {
  return arr(obj(policy['spec'])['ingress']).some((rule) => {
    const ports = arr(obj(rule)['ports']).map((p) => Number(obj(p)['port']));
    if (ports.length > 0 && !ports.includes(port)) return false;
    const from = arr(obj(rule)['from']).map(obj);
    // A peer with only a namespaceSelector admits every pod of the selected namespaces.
    return from.length === 0 || from.some((peer) => peer['namespaceSelector'] !== undefined && peer['podSelector'] === undefined && selects(obj(peer['namespaceSelector']), namespaceLabels));
  });
}

/** Capabilities each Pod Security Standards level lets a container add (baseline's list; restricted's). */
const PSS_ALLOWED_ADD: Record<string, string[] | 'any'> = {
  privileged: 'any',
  baseline: ['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT'],
  restricted: ['NET_BIND_SERVICE'],
};

/** Whether a Pod Security level admits a container's securityContext (capabilities and privileged mode). */
function pssAdmits(level: string, securityContext: Obj): boolean {
  const allowed = PSS_ALLOWED_ADD[level];
  if (allowed === undefined) return false;
  if (allowed === 'any') return true;
  const added = arr(obj(securityContext['capabilities'])['add']).map(String);
  return securityContext['privileged'] !== true && added.every((c) => allowed.includes(c));
}

/** The securityContexts of the containers Istio's sidecar injector adds, with and without its CNI plugin. */
const ISTIO_INJECTED: Record<'cni' | 'initContainer', Record<string, Obj>> = {
  cni: {
    'istio-validation': { runAsUser: 1337, runAsNonRoot: true, allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ['ALL'] } },
    'istio-proxy': { runAsUser: 1337, runAsNonRoot: true, allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ['ALL'] } },
  },
  initContainer: {
    'istio-init': { runAsUser: 0, runAsNonRoot: false, allowPrivilegeEscalation: false, privileged: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } },
    'istio-proxy': { runAsUser: 1337, runAsNonRoot: true, allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ['ALL'] } },
  },
};

describe('deploy/kubernetes', () => {
  it('parses, and the kustomization lists exactly the manifests in the directory', () => {
    for (const d of k8s) {
      expect(d['apiVersion'], String(d['__file'])).toBeTruthy();
      expect(d['kind'], String(d['__file'])).toBeTruthy();
    }
    const kustomization = readYaml(K8S, 'kustomization.yaml');
    const files = listFiles(K8S, '.yaml').filter((f) => f !== 'kustomization.yaml');
    expect([...arr(kustomization['resources'])].sort()).toEqual(files);
    expect(new Set(k8s.map((d) => d['kind']))).toEqual(
      new Set(['Kustomization', 'Namespace', 'ServiceAccount', 'ConfigMap', 'Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'NetworkPolicy']),
    );
  });

  it('exposes gRPC on 9001 and the admin endpoints on 9090, matching the configuration', () => {
    expect(containerPorts).toEqual({ grpc: 9001, admin: 9090 });
    expect(hostPort(String(obj(baseConfig['server'])['listen'])).port).toBe(containerPorts['grpc']);
    expect(hostPort(String(obj(obj(baseConfig['telemetry'])['admin'])['listen'])).port).toBe(containerPorts['admin']);
    const annotations = obj(obj(obj(obj(deployment['spec'])['template'])['metadata'])['annotations']);
    expect(annotations).toMatchObject({ 'prometheus.io/port': '9090', 'prometheus.io/path': '/metrics' });
  });

  it('probes liveness on /healthz and readiness on /readyz of the admin port', () => {
    const probe = (kind: string): { path: string; port: number } => {
      const get = obj(obj(container[kind])['httpGet']);
      return { path: String(get['path']), port: portNumber(get['port']) };
    };
    expect(probe('livenessProbe')).toEqual({ path: '/healthz', port: 9090 });
    expect(probe('startupProbe')).toEqual({ path: '/healthz', port: 9090 });
    expect(probe('readinessProbe')).toEqual({ path: '/readyz', port: 9090 });
  });

  it('runs non-root with a read-only root filesystem, no capabilities and bounded resources', () => {
    const pod = obj(podSpec['securityContext']);
    const sc = obj(container['securityContext']);
    expect(pod).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(Number(pod['runAsUser'])).toBeGreaterThan(0);
    // Same uid as the image's USER, so file ownership in the image and volumes lines up.
    const dockerUser = /^USER\s+(\d+)/m.exec(readFileSync(repoPath('Dockerfile'), 'utf8'))?.[1];
    expect(String(pod['runAsUser'])).toBe(dockerUser);
    expect(sc).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const resources = obj(container['resources']);
    expect(obj(resources['requests'])).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(obj(resources['limits'])['memory']).toBeDefined();
    expect(podSpec['automountServiceAccountToken']).toBe(false);
    // The only writable path is an emptyDir.
    const mounts = arr(container['volumeMounts']).map(obj);
    const writable = mounts.filter((m) => m['readOnly'] !== true).map((m) => m['name']);
    const volumes = Object.fromEntries(arr(podSpec['volumes']).map((v) => [String(obj(v)['name']), obj(v)]));
    for (const w of writable) expect(volumes[String(w)]?.['emptyDir'], String(w)).toBeDefined();
  });

  it('mounts the configuration where --config points and the TLS files where the configuration reads them', () => {
    const args = arr(container['args']).map(String);
    const configPath = args[args.indexOf('--config') + 1] ?? '';
    const mounts = arr(container['volumeMounts']).map(obj);
    const volumes = Object.fromEntries(arr(podSpec['volumes']).map((v) => [String(obj(v)['name']), obj(v)]));
    const mountFor = (file: string): Obj | undefined => mounts.find((m) => file.startsWith(`${String(m['mountPath'])}/`));
    const configMount = mountFor(configPath);
    expect(configMount?.['subPath']).toBeUndefined(); // a subPath mount would never see ConfigMap updates
    expect(obj(volumes[String(configMount?.['name'])]?.['configMap'])['name']).toBe('entra-authz-config');
    expect(configPath.endsWith('/config.yaml')).toBe(true);
    const tls = obj(obj(baseConfig['server'])['tls']);
    for (const key of ['certFile', 'keyFile', 'caFile']) {
      const m = mountFor(String(tls[key]));
      expect(obj(volumes[String(m?.['name'])]?.['secret'])['secretName'], key).toBe('entra-authz-tls');
    }
    const shutdown = Number(obj(baseConfig['server'])['shutdownGraceSeconds']);
    expect(Number(podSpec['terminationGracePeriodSeconds'])).toBeGreaterThan(shutdown + 5);
  });

  it('carries a configuration entra-authz\'s own schema accepts', () => {
    expect(entraAuthzConfigProblems(baseConfig)).toEqual([]);
  });

  it('routes the Services\' named ports to the container\'s 9001 and 9090', () => {
    const services = k8s.filter((d) => d['kind'] === 'Service');
    expect(services.map((s) => obj(s['metadata'])['name']).sort()).toEqual(['entra-authz', 'entra-authz-headless']);
    for (const s of services) {
      const spec = obj(s['spec']);
      expect(matches(obj(spec['selector']), podLabels)).toBe(true);
      for (const p of arr(spec['ports']).map(obj)) {
        expect(portNumber(p['targetPort']), String(p['name'])).toBe(p['port']);
      }
    }
    const main = obj(find(k8s, 'Service', 'entra-authz')['spec']);
    expect(arr(main['ports']).map((p) => [obj(p)['port'], obj(p)['appProtocol']])).toEqual([
      [9001, 'grpc'],
      [9090, 'http'],
    ]);
    expect(obj(find(k8s, 'Service', 'entra-authz-headless')['spec'])['clusterIP']).toBe('None');
  });

  it('keeps pods available: the PDB and the HPA target this Deployment', () => {
    const pdb = obj(find(k8s, 'PodDisruptionBudget')['spec']);
    expect(matches(obj(obj(pdb['selector'])['matchLabels']), podLabels)).toBe(true);
    expect(pdb['maxUnavailable'] ?? pdb['minAvailable']).toBeDefined();
    const hpa = obj(find(k8s, 'HorizontalPodAutoscaler')['spec']);
    expect(obj(hpa['scaleTargetRef'])).toMatchObject({ kind: 'Deployment', name: obj(deployment['metadata'])['name'] });
    expect(Number(hpa['minReplicas'])).toBeGreaterThanOrEqual(2);
    expect(Number(hpa['maxReplicas'])).toBeGreaterThan(Number(hpa['minReplicas']));
    expect(obj(obj(obj(deployment['spec'])['strategy'])['rollingUpdate'])['maxUnavailable']).toBe(0);
  });

  it('leaves the replica count to the HPA, so an apply never resets a scaled-out Deployment', () => {
    expect(obj(deployment['spec'])['replicas']).toBeUndefined();
  });

  it('pauses before SIGTERM with the kubelet\'s own sleep, starting no process in the container', () => {
    const preStop = obj(obj(container['lifecycle'])['preStop']);
    expect(Object.keys(preStop)).toEqual(['sleep']);
    const pause = Number(obj(preStop['sleep'])['seconds']);
    expect(pause).toBeGreaterThan(0);
    const shutdown = Number(obj(baseConfig['server'])['shutdownGraceSeconds']);
    expect(Number(podSpec['terminationGracePeriodSeconds'])).toBeGreaterThan(shutdown + pause);
  });

  it('lets only proxies reach 9001 and only monitoring reach 9090', () => {
    const np = obj(find(k8s, 'NetworkPolicy')['spec']);
    expect(matches(obj(obj(np['podSelector'])['matchLabels']), podLabels)).toBe(true);
    const ports = arr(np['ingress']).flatMap((r) => arr(obj(r)['ports']).map((p) => obj(p)['port']));
    expect(ports.sort()).toEqual([9001, 9090]);
  });
});

describe('deploy/istio', () => {
  const istio = docsOf(ISTIO);
  const mesh = obj(obj(find(istio, 'IstioOperator', 'entra-authz-mesh')['spec'])['meshConfig']);
  const providers = arr(mesh['extensionProviders']).map(obj);
  const authzProvider = providers.find((p) => p['envoyExtAuthzGrpc'] !== undefined) as Obj;
  const grpc = obj(authzProvider['envoyExtAuthzGrpc']);
  const patchedConfig = obj(parse(configText(find(istio, 'ConfigMap', 'entra-authz-config'))));

  it('registers entra-authz mesh-wide as an envoyExtAuthzGrpc provider on the Service\'s gRPC port, failing closed', () => {
    const svc = find(k8s, 'Service', 'entra-authz');
    const meta = obj(svc['metadata']);
    expect(grpc['service']).toBe(`${String(meta['name'])}.${String(meta['namespace'])}.svc.cluster.local`);
    const grpcPort = arr(obj(svc['spec'])['ports']).map(obj).find((p) => p['name'] === 'grpc');
    expect(grpc['port']).toBe(grpcPort?.['port']);
    expect(grpc['port']).toBe(9001);
    expect(grpc).toMatchObject({ failOpen: false, statusOnError: '503', timeout: '0.5s' });
  });

  it('guards the workload with a CUSTOM AuthorizationPolicy naming that provider, exempting only health', () => {
    const policy = istio.find((d) => d['kind'] === 'AuthorizationPolicy' && obj(d['spec'])['action'] === 'CUSTOM') as Obj;
    const spec = obj(policy['spec']);
    expect(obj(spec['provider'])['name']).toBe(authzProvider['name']);
    expect(obj(obj(spec['selector'])['matchLabels'])).not.toEqual({});
    const ops = arr(spec['rules']).flatMap((r) => arr(obj(r)['to']).map((t) => obj(obj(t)['operation'])));
    expect(ops).toEqual([{ notPaths: ['/healthz'] }]);
  });

  it('enables an access log provider that records the decision id and subject', () => {
    const telemetry = find(istio, 'Telemetry');
    const used = arr(obj(telemetry['spec'])['accessLogging']).flatMap((a) => arr(obj(a)['providers']).map((p) => obj(p)['name']));
    const provider = providers.find((p) => used.includes(p['name']));
    const labels = Object.values(obj(obj(obj(provider?.['envoyFileAccessLog'])['logFormat'])['labels']));
    expect(labels).toContain('%DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision_id)%');
    expect(labels).toContain('%DYNAMIC_METADATA(envoy.filters.http.ext_authz:oid)%');
  });

  it('replaces the configuration with one that needs no context_extensions and no server TLS', () => {
    expect(entraAuthzConfigProblems(patchedConfig)).toEqual([]);
    expect(obj(patchedConfig['server'])['tls']).toBeUndefined();
    for (const rule of arr(patchedConfig['rules']).map(obj)) {
      expect(obj(rule['match'])['contextExtensions'], String(rule['name'])).toBeUndefined();
      expect(obj(rule['match'])['paths'], String(rule['name'])).toBeDefined();
    }
    expect(hostPort(String(obj(patchedConfig['server'])['listen'])).port).toBe(9001);
  });

  const namespaces = istio.filter((d) => d['kind'] === 'Namespace');
  const namespaceLabels = (name: string): Obj => ({
    ...obj(obj(namespaces.find((n) => obj(n['metadata'])['name'] === name)?.['metadata'])['labels']),
    // Kubernetes sets this label on every namespace itself.
    'kubernetes.io/metadata.name': name,
  });
  const networkPolicy = find(k8s, 'NetworkPolicy');

  it('lets every namespace whose sidecars call Check through the NetworkPolicy, and no other', () => {
    const allowPolicy = find(istio, 'AuthorizationPolicy', 'entra-authz-callers');
    const callers = arr(obj(allowPolicy['spec'])['rules'])
      .map(obj)
      .filter((r) => arr(r['to']).some((t) => arr(obj(obj(t)['operation'])['ports']).includes('9001')))
      .flatMap((r) => arr(r['from']).flatMap((f) => arr(obj(obj(f)['source'])['namespaces']).map(String)));
    // The protected workloads' sidecars are the callers: their namespace must be among them.
    const protectedNamespaces = istio
      .filter((d) => d['kind'] === 'AuthorizationPolicy' && obj(d['spec'])['action'] === 'CUSTOM')
      .map((d) => String(obj(d['metadata'])['namespace']));
    expect(callers).toEqual(expect.arrayContaining(protectedNamespaces));
    expect(callers.length).toBeGreaterThan(0);
    for (const ns of callers) expect(networkPolicyAdmits(networkPolicy, namespaceLabels(ns), 9001), ns).toBe(true);
    expect(networkPolicyAdmits(networkPolicy, namespaceLabels('some-other-team'), 9001)).toBe(false);
    expect(networkPolicyAdmits(networkPolicy, namespaceLabels('shop'), 9090)).toBe(false);
  });

  it('injects sidecars in the caller namespaces it declares', () => {
    for (const ns of namespaces) expect(obj(obj(ns['metadata'])['labels'])['istio-injection'], String(obj(ns['metadata'])['name'])).toBe('enabled');
  });

  it('enforces a Pod Security level that admits the sidecar Istio injects with its CNI plugin, and says the plugin is required', () => {
    const kustomization = readYaml(ISTIO, 'kustomization.yaml');
    const namespacePatch = arr(kustomization['patches'])
      .map((p) => obj(parse(String(obj(p)['patch'] ?? '{}'))))
      .find((p) => p['kind'] === 'Namespace' && obj(p['metadata'])['name'] === 'entra-authz');
    const baseLabels = obj(obj(find(k8s, 'Namespace', 'entra-authz')['metadata'])['labels']);
    const labels = { ...baseLabels, ...obj(obj(namespacePatch?.['metadata'])['labels']) };
    const level = String(labels['pod-security.kubernetes.io/enforce']);
    expect(level).not.toBe('privileged');
    expect(pssAdmits(level, obj(container['securityContext']))).toBe(true);
    for (const [name, sc] of Object.entries(ISTIO_INJECTED.cni)) expect(pssAdmits(level, sc), name).toBe(true);
    // istio-init would be refused, so the overlay cannot work without the CNI plugin: it must say so.
    expect(pssAdmits(level, ISTIO_INJECTED.initContainer['istio-init'] as Obj)).toBe(false);
    expect(readFileSync(repoPath(ISTIO, 'kustomization.yaml'), 'utf8')).toMatch(/Requires the Istio CNI plugin/);
    expect(readFileSync(repoPath('docs', 'deployment.md'), 'utf8')).toMatch(/Istio CNI/);
  });

  it('builds on the Kubernetes base with patches that exist and drop the TLS Secret mount', () => {
    const kustomization = readYaml(ISTIO, 'kustomization.yaml');
    for (const r of arr(kustomization['resources']).map(String)) expect(existsSync(repoPath(ISTIO, r)), r).toBe(true);
    expect(arr(kustomization['resources'])).toContain('../kubernetes');
    const patches = arr(kustomization['patches']).map(obj);
    for (const p of patches.filter((x) => x['path'] !== undefined)) expect(existsSync(repoPath(ISTIO, String(p['path'])))).toBe(true);
    const inline = patches.map((p) => String(p['patch'] ?? '')).join('\n');
    expect(inline).toMatch(/name: tls\s+\$patch: delete/);
    expect(inline).toMatch(/istio-injection: enabled/);
  });
});

describe('deploy/kubernetes-http', () => {
  const HTTP = 'deploy/kubernetes-http';
  const component = readYaml(HTTP, 'kustomization.yaml');
  const patches = arr(component['patches']).map(obj);

  /** Applies the component's JSON patches (only `add`, the one operation it uses) to a copy of the base documents. */
  function withComponent(base: Obj[]): Obj[] {
    const docs = structuredClone(base);
    for (const p of patches) {
      const target = obj(p['target']);
      const ops = arr(parse(String(p['patch']))).map(obj);
      for (const doc of docs.filter((d) => d['kind'] === target['kind'] && obj(d['metadata'])['name'] === target['name'])) {
        for (const op of ops) {
          expect(op['op']).toBe('add');
          const keys = String(op['path']).split('/').slice(1);
          const last = keys.pop();
          let at: unknown = doc;
          for (const k of keys) at = Array.isArray(at) ? at[Number(k)] : obj(at)[k];
          if (last === '-') {
            expect(Array.isArray(at), String(op['path'])).toBe(true);
            (at as unknown[]).push(op['value']);
          } else obj(at)[String(last)] = op['value'];
        }
      }
    }
    return [...docs, ...arr(component['resources']).flatMap((f) => readYamlDocuments(HTTP, String(f)))];
  }

  const patched = withComponent(k8s);
  const patchedContainer = obj(arr(obj(obj(obj(find(patched, 'Deployment', 'entra-authz')['spec'])['template'])['spec'])['containers'])[0]);
  const patchedPorts = Object.fromEntries(arr(patchedContainer['ports']).map((p) => [String(obj(p)['name']), Number(obj(p)['containerPort'])]));

  it('is a kustomize Component whose patches all target manifests of the base or the Istio overlay', () => {
    expect(component).toMatchObject({ apiVersion: 'kustomize.config.k8s.io/v1alpha1', kind: 'Component' });
    const known = [...k8s, ...docsOf(ISTIO)].map((d) => `${String(d['kind'])}/${String(obj(d['metadata'])['name'])}`);
    for (const p of patches) expect(known, JSON.stringify(p['target'])).toContain(`${String(obj(p['target'])['kind'])}/${String(obj(p['target'])['name'])}`);
  });

  it('leaves the base without port 9002 unless an overlay adds it', () => {
    expect(Object.values(containerPorts)).not.toContain(9002);
    expect(k8s.flatMap((d) => (d['kind'] === 'Service' ? arr(obj(d['spec'])['ports']).map((p) => obj(p)['port']) : []))).not.toContain(9002);
  });

  it('exposes 9002 on the container and routes both Services\' HTTP port to it', () => {
    expect(patchedPorts).toEqual({ grpc: 9001, admin: 9090, http: 9002 });
    for (const name of ['entra-authz', 'entra-authz-headless']) {
      const port = arr(obj(find(patched, 'Service', name)['spec'])['ports']).map(obj).find((p) => p['port'] === 9002);
      expect(patchedPorts[String(port?.['targetPort'])], name).toBe(9002);
      expect(port?.['appProtocol'], name).toBe('http');
    }
  });

  it('admits the client namespaces to 9002, and no one else', () => {
    const policies = patched.filter((d) => d['kind'] === 'NetworkPolicy');
    const admits = (labels: Obj, port: number): boolean => policies.some((p) => networkPolicyAdmits(p, labels, port));
    expect(admits({ 'entra-authz.io/client': 'true', 'kubernetes.io/metadata.name': 'ingress' }, 9002)).toBe(true);
    expect(admits({ 'kubernetes.io/metadata.name': 'some-other-team' }, 9002)).toBe(false);
    expect(admits({ 'kubernetes.io/metadata.name': 'monitoring' }, 9002)).toBe(false);
  });

  it('lets the Istio callers of Check call the HTTP listener too', () => {
    const callers = find(withComponent(docsOf(ISTIO)), 'AuthorizationPolicy', 'entra-authz-callers');
    const ports = arr(obj(obj(arr(obj(arr(obj(callers['spec'])['rules'])[0])['to'])[0])['operation'])['ports']);
    expect(ports).toEqual(['9001', '9002']);
  });

  it('matches the server.http setting docs/deployment.md tells the operator to add', () => {
    const docs = readFileSync(repoPath('docs', 'deployment.md'), 'utf8');
    const snippet = /### HTTP authorization mode[\s\S]*?```yaml\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(snippet).toBeDefined();
    const http = obj(obj(obj(parse(snippet ?? ''))['server'])['http']);
    const config = { ...baseConfig, server: { ...obj(baseConfig['server']), http } };
    expect(entraAuthzConfigProblems(config)).toEqual([]);
    expect(hostPort(String(http['listen'])).port).toBe(patchedPorts['http']);
  });
});
