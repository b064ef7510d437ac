import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readEnvoyShape } from './envoy-shape.js';
import { arr, entraAuthzConfigProblems, genCertIdentities, hostPort, obj, readYaml, repoPath, walk, type Obj } from './helpers.js';

/**
 * docker-compose.yml cannot be run here (no Docker engine), so everything it relies on is checked
 * statically: build contexts and stages, mounted files, which ports each service's own config
 * listens on, who dials what, and which uid reads which key.
 */

const compose = readYaml('docker-compose.yml');
const services = obj(compose['services']);
const serviceNames = Object.keys(services);
const svc = (name: string): Obj => obj(services[name]);

/** The uid the official Envoy image drops to (its entrypoint runs envoy as user `envoy`, ENVOY_UID=101). */
const ENVOY_IMAGE_UID = 101;
/** Ports the third-party images listen on by themselves (their documented defaults). */
const IMAGE_PORTS: Record<string, number[]> = {
  // Jaeger v2's UI; its OTLP receivers are opened by `--set=receivers.otlp...endpoint=` flags.
  'jaegertracing/jaeger': [16686],
};

// --- Dockerfile -------------------------------------------------------------------------------

interface Stage {
  name: string;
  from: string;
  lines: string[];
}

function dockerStages(): Stage[] {
  const text = readFileSync(repoPath('Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ from: from[1] as string, name: from[2] ?? `#${stages.length}`, lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

function dockerignorePatterns(): RegExp[] {
  return readFileSync(repoPath('.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((p) => {
      const re = p
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '(?:.*/)?')
        .replace(/\*/g, '[^/]*');
      return new RegExp(`^${re}(?:/.*)?$`);
    });
}

/** The uid a stage runs as (following FROM <stage> chains). */
function stageUser(stages: Stage[], name: string): string | undefined {
  const stage = stages.find((s) => s.name === name);
  if (!stage) return undefined;
  const user = [...stage.lines].reverse().find((l) => /^USER\s/i.test(l));
  if (user) return user.split(/\s+/)[1];
  return stages.some((s) => s.name === stage.from) ? stageUser(stages, stage.from) : undefined;
}

// --- what each service listens on, from its own configuration ----------------------------------

function mountedFile(service: Obj, containerPath: string): string | undefined {
  for (const v of arr(service['volumes'])) {
    const [src = '', dst = ''] = String(v).split(':');
    if (dst === containerPath && src.startsWith('./')) return repoPath(src);
  }
  return undefined;
}

function commandArg(service: Obj, flag: string): string | undefined {
  const cmd = arr(service['command']).map(String);
  const i = cmd.indexOf(flag);
  return i >= 0 ? cmd[i + 1] : cmd.find((c) => c.startsWith(`${flag}=`))?.slice(flag.length + 1);
}

function entraAuthzConfig(service: Obj): Obj {
  const path = commandArg(service, '--config');
  const file = path !== undefined ? mountedFile(service, path) : undefined;
  if (!file) throw new Error('entra-authz config is not mounted where --config points');
  return obj(parse(readFileSync(file, 'utf8')));
}

function listeningPorts(name: string): number[] {
  const s = svc(name);
  const image = String(s['image'] ?? '');
  if (image.startsWith('envoyproxy/envoy')) {
    const file = mountedFile(s, commandArg(s, '-c') ?? '');
    if (!file) throw new Error('envoy config not mounted where -c points');
    const doc = obj(parse(readFileSync(file, 'utf8')));
    const ports = arr(obj(doc['static_resources'])['listeners']).map((l) => Number(obj(obj(obj(l)['address'])['socket_address'])['port_value']));
    ports.push(Number(obj(obj(obj(doc['admin'])['address'])['socket_address'])['port_value']));
    return ports;
  }
  const cmd = arr(s['command']).map(String);
  if (cmd[0] === 'serve') {
    const config = entraAuthzConfig(s);
    return [
      hostPort(String(obj(config['server'])['listen'] ?? '0.0.0.0:9001')).port,
      hostPort(String(obj(obj(config['telemetry'])['admin'])['listen'] ?? '0.0.0.0:9090')).port,
    ];
  }
  if (cmd[0] === 'emulator') return [hostPort(commandArg(s, '--listen') ?? '127.0.0.1:9400').port];
  if (image.startsWith('otel/opentelemetry-collector')) {
    const file = mountedFile(s, (commandArg(s, '--config') ?? '').replace(/^file:/, ''));
    if (!file) throw new Error('collector config not mounted where --config points');
    const ports: number[] = [];
    walk(obj(parse(readFileSync(file, 'utf8')))['receivers'], (path, v) => {
      if (path.endsWith('.endpoint') && typeof v === 'string') ports.push(hostPort(v).port);
    });
    return ports;
  }
  const listen = obj(s['environment'])['LISTEN'];
  if (typeof listen === 'string') return [hostPort(listen).port];
  const setEndpoints = cmd.map((c) => /^--set=receivers\.[\w.]+\.endpoint=(.+)$/.exec(c)?.[1]).filter((e) => e !== undefined);
  for (const [prefix, ports] of Object.entries(IMAGE_PORTS)) if (image.startsWith(prefix)) return [...ports, ...setEndpoints.map((e) => hostPort(e).port)];
  return [];
}

/** host:port pairs a service dials, from its configuration and environment. */
function dialedAddresses(name: string): { what: string; host: string; port: number }[] {
  const s = svc(name);
  const out: { what: string; host: string; port: number }[] = [];
  const url = (what: string, u: string): void => {
    const parsed = new URL(u);
    out.push({ what, host: parsed.hostname, port: Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80)) });
  };
  for (const [k, v] of Object.entries(obj(s['environment']))) {
    if (typeof v !== 'string') continue;
    if (/^https?:\/\//.test(v)) url(`env ${k}`, v);
    else if (k.endsWith('_ADDRESS')) out.push({ what: `env ${k}`, ...hostPort(v) });
  }
  const publicUrl = commandArg(s, '--public-url');
  if (publicUrl) url('--public-url', publicUrl);
  const image = String(s['image'] ?? '');
  if (image.startsWith('envoyproxy/envoy')) {
    const doc = obj(parse(readFileSync(mountedFile(s, commandArg(s, '-c') ?? '') as string, 'utf8')));
    for (const c of arr(obj(doc['static_resources'])['clusters'])) {
      walk(obj(c)['load_assignment'], (path, v) => {
        if (path.endsWith('socket_address')) out.push({ what: `cluster ${String(obj(c)['name'])}`, host: String(obj(v)['address']), port: Number(obj(v)['port_value']) });
      });
    }
  }
  if (arr(s['command'])[0] === 'serve') url('entra.authority', String(obj(entraAuthzConfig(s)['entra'])['authority']));
  if (image.startsWith('otel/opentelemetry-collector')) {
    const file = mountedFile(s, (commandArg(s, '--config') ?? '').replace(/^file:/, '')) as string;
    walk(obj(parse(readFileSync(file, 'utf8')))['exporters'], (path, v) => {
      if (path.endsWith('.endpoint') && typeof v === 'string') out.push({ what: `exporter ${path}`, ...hostPort(v.replace(/^https?:\/\//, '')) });
    });
  }
  return out;
}

describe('docker-compose.yml', () => {
  it('has the whole demo: Envoy, entra-authz, the Entra emulator, upstream, client, collector, Jaeger and a cert step', () => {
    expect(serviceNames.sort()).toEqual(['certs', 'demo-client', 'entra', 'entra-authz', 'envoy', 'jaeger', 'orders', 'otel-collector'].sort());
    expect(String(svc('envoy')['image'])).toMatch(/^envoyproxy\/envoy:v\d+\.\d+/);
    expect(arr(svc('entra-authz')['command'])).toEqual(['serve', '--config', '/etc/entra-authz/config.yaml']);
    expect(arr(svc('entra')['command'])).toEqual(['emulator', '--listen', '0.0.0.0:9400', '--public-url', 'http://entra:9400']);
  });

  it('builds only from contexts and Dockerfile stages that exist', () => {
    const stages = dockerStages();
    for (const name of serviceNames) {
      const build = svc(name)['build'];
      if (build === undefined) {
        expect(svc(name)['image'], `${name} has neither build nor image`).toBeDefined();
        continue;
      }
      const b = obj(build);
      const context = repoPath(String(b['context'] ?? '.'));
      expect(statSync(context).isDirectory(), name).toBe(true);
      expect(existsSync(join(context, String(b['dockerfile'] ?? 'Dockerfile'))), name).toBe(true);
      expect(stages.map((s) => s.name), name).toContain(b['target']);
    }
  });

  it('starts in dependency order from one command: every dependency exists and there is no cycle', () => {
    const deps = (n: string): string[] => Object.keys(obj(svc(n)['depends_on']));
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (n: string): void => {
      expect(serviceNames, `unknown dependency ${n}`).toContain(n);
      if (done.has(n)) return;
      expect(visiting.has(n), `cycle through ${n}`).toBe(false);
      visiting.add(n);
      deps(n).forEach(visit);
      visiting.delete(n);
      done.add(n);
    };
    serviceNames.forEach(visit);
    // Whatever needs certificates waits for them to be written.
    for (const n of serviceNames) {
      const mountsCerts = arr(svc(n)['volumes']).some((v) => String(v).startsWith('certs:'));
      if (mountsCerts && n !== 'certs') {
        const chain = new Set<string>();
        const collect = (x: string): void => deps(x).forEach((d) => (chain.add(d), collect(d)));
        collect(n);
        expect(chain.has('certs'), `${n} mounts certs before they exist`).toBe(true);
      }
    }
    expect(obj(obj(svc('entra-authz')['depends_on'])['certs'])['condition']).toBe('service_completed_successfully');
  });

  it('mounts only files that exist and volumes it declares', () => {
    const volumes = Object.keys(obj(compose['volumes']));
    for (const name of serviceNames) {
      for (const v of arr(svc(name)['volumes'])) {
        const [src = ''] = String(v).split(':');
        if (src.startsWith('./') || src.startsWith('/')) expect(existsSync(repoPath(src)), `${name}: ${src}`).toBe(true);
        else expect(volumes, `${name}: volume ${src}`).toContain(src);
      }
    }
  });

  it('publishes only ports that each service\'s own configuration listens on', () => {
    let checked = 0;
    for (const name of serviceNames) {
      for (const p of arr(svc(name)['ports'])) {
        const container = Number(String(p).split(':').at(-1)?.split('/')[0]);
        expect(listeningPorts(name), `${name} publishes ${String(p)}`).toContain(container);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(5);
    expect(listeningPorts('entra-authz')).toEqual([9001, 9090]);
    expect(listeningPorts('envoy')).toEqual([8443, 9901]);
  });

  it('dials only services that listen on the dialed port', () => {
    const seen: string[] = [];
    for (const name of serviceNames) {
      for (const d of dialedAddresses(name)) {
        seen.push(`${name} → ${d.host}:${d.port}`);
        expect(serviceNames, `${name} ${d.what} dials unknown host ${d.host}`).toContain(d.host);
        expect(listeningPorts(d.host), `${name} ${d.what} dials ${d.host}:${d.port}`).toContain(d.port);
      }
    }
    expect(seen).toEqual(
      expect.arrayContaining([
        'envoy → entra-authz:9001',
        'envoy → orders:50051',
        'envoy → otel-collector:4317',
        'entra-authz → entra:9400',
        'entra-authz → otel-collector:4318',
        'demo-client → envoy:8443',
        'demo-client → entra:9400',
        'otel-collector → jaeger:4317',
      ]),
    );
  });

  it('health checks probe ports their own service listens on', () => {
    for (const name of ['entra', 'entra-authz']) {
      const test = arr(obj(svc(name)['healthcheck'])['test']).map(String).join(' ');
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(test)?.[1]);
      expect(listeningPorts(name), name).toContain(port);
    }
    expect(arr(obj(svc('entra-authz')['healthcheck'])['test']).join(' ')).toContain('/readyz');
  });

  it('points every certificate path at a file scripts/gen-certs.sh writes, on the mounted certs volume', () => {
    const produced = new Set(['ca.crt', ...genCertIdentities().flatMap((i) => [`${i.name}.crt`, `${i.name}.key`])]);
    const certMount = (name: string): string | undefined =>
      arr(svc(name)['volumes'])
        .map(String)
        .find((v) => v.startsWith('certs:'))
        ?.split(':')[1];
    const uses: [string, string][] = [];
    walk(readYaml('envoy', 'envoy.yaml'), (path, v) => {
      if (path.endsWith('.filename') && typeof v === 'string') uses.push(['envoy', v]);
    });
    const tls = obj(obj(entraAuthzConfig(svc('entra-authz'))['server'])['tls']);
    for (const k of ['certFile', 'keyFile', 'caFile']) uses.push(['entra-authz', String(tls[k])]);
    const certDir = String(obj(svc('demo-client')['environment'])['CERT_DIR']);
    for (const f of ['ca.crt', 'demo-client.crt', 'demo-client.key']) uses.push(['demo-client', `${certDir}/${f}`]);
    expect(uses.length).toBeGreaterThan(8);
    for (const [name, file] of uses) {
      const mount = certMount(name);
      expect(mount, `${name} mounts no certs volume`).toBeDefined();
      expect(file.startsWith(`${mount}/`), `${name}: ${file}`).toBe(true);
      expect(produced, `${name}: ${file}`).toContain(file.slice(String(mount).length + 1));
    }
  });

  it('makes each private key readable only by the uid of the container that uses it', () => {
    const owners = Object.fromEntries(
      String(obj(svc('certs')['environment'])['KEY_OWNERS'])
        .split(/\s+/)
        .map((pair) => pair.split('=') as [string, string]),
    );
    const stages = dockerStages();
    const uidOf = (name: string): number => {
      const s = svc(name);
      if (s['user'] !== undefined) return Number(String(s['user']).split(':')[0]);
      if (String(s['image']).startsWith('envoyproxy/envoy')) return ENVOY_IMAGE_UID;
      return Number(String(stageUser(stages, String(obj(s['build'])['target']))).split(':')[0]);
    };
    const readers: Record<string, string> = { envoy: 'envoy', 'entra-authz': 'entra-authz', 'demo-client': 'demo-client' };
    for (const [key, service] of Object.entries(readers)) {
      expect(Number(owners[key]?.split(':')[0]), `${key}.key`).toBe(uidOf(service));
    }
    // No two services share a uid, so no container can read another's key.
    const uids = Object.values(readers).map(uidOf);
    expect(new Set(uids).size).toBe(uids.length);
  });

  it('gives entra-authz a configuration its own schema accepts, with the policies Envoy\'s routes name', () => {
    const config = entraAuthzConfig(svc('entra-authz'));
    expect(entraAuthzConfigProblems(config)).toEqual([]);
    const policies = new Set(readEnvoyShape().routes.map((r) => r.contextExtensions['policy']).filter((p) => p !== undefined));
    const matched = new Set(arr(config['rules']).map((r) => obj(obj(obj(r)['match'])['contextExtensions'])['policy']));
    expect(matched).toEqual(policies);
  });

  it('wires the collector pipeline only from receivers, processors and exporters it defines', () => {
    const file = mountedFile(svc('otel-collector'), (commandArg(svc('otel-collector'), '--config') ?? '').replace(/^file:/, ''));
    const config = obj(parse(readFileSync(file as string, 'utf8')));
    const pipelines = obj(obj(config['service'])['pipelines']);
    expect(Object.keys(pipelines)).toEqual(['traces']);
    for (const pipeline of Object.values(pipelines).map(obj)) {
      for (const kind of ['receivers', 'processors', 'exporters']) {
        for (const name of arr(pipeline[kind])) expect(Object.keys(obj(config[kind])), `${kind}: ${String(name)}`).toContain(name);
      }
      expect(arr(pipeline['exporters'])).toContain('otlp/jaeger');
    }
  });

  it('pins every image it pulls to a release, never a floating `latest`', () => {
    const pulled = serviceNames.filter((n) => svc(n)['build'] === undefined).map((n) => String(svc(n)['image']));
    expect(pulled.length).toBeGreaterThanOrEqual(3);
    for (const image of pulled) expect(image, image).toMatch(/^[\w./-]+:v?\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$/);
  });

  it('collects traces in Jaeger v2, listening for OTLP where the collector exports', () => {
    expect(String(svc('jaeger')['image'])).toMatch(/^jaegertracing\/jaeger:2\./);
    expect(listeningPorts('jaeger')).toEqual(expect.arrayContaining([16686, 4317, 4318]));
  });

  it('hardens the containers it builds: read-only root, no capabilities, no privilege escalation', () => {
    for (const name of ['entra', 'entra-authz', 'orders', 'demo-client']) {
      const s = svc(name);
      expect(s['read_only'], name).toBe(true);
      expect(arr(s['cap_drop']), name).toContain('ALL');
      expect(arr(s['security_opt']), name).toContain('no-new-privileges:true');
    }
  });
});

describe('Dockerfile', () => {
  const stages = dockerStages();

  it('is multi-stage and its default (last) stage is the non-root runtime', () => {
    expect(stages.length).toBeGreaterThanOrEqual(4);
    const last = stages.at(-1) as Stage;
    expect(last.name).toBe('runtime');
    const user = stageUser(stages, 'runtime') ?? '';
    expect(user).toMatch(/^\d+:\d+$/);
    expect(Number(user.split(':')[0])).toBeGreaterThan(0);
    const server = stages.find((s) => s.name === last.from) as Stage;
    expect(server.lines).toContain('ENTRYPOINT ["node", "dist/cli.js"]');
    // The runtime gets production dependencies only; TypeScript stays in the build stage.
    expect(server.lines.join('\n')).toMatch(/COPY --from=deps \/app\/node_modules/);
    expect(stages.find((s) => s.name === 'deps')?.lines.join('\n')).toMatch(/npm ci --omit=dev/);
    expect(stages.find((s) => s.name === 'build')?.lines.join('\n')).toMatch(/npm run build/);
  });

  it('caps the server\'s heap as the Kubernetes manifest does, so the verified-token cache stays within the memory limit', () => {
    const server = stages.find((s) => s.name === 'server') as Stage;
    const heap = (text: string): string | undefined => /--max-old-space-size=(\d+)/.exec(text)?.[1];
    const image = heap(server.lines.filter((l) => l.startsWith('ENV NODE_OPTIONS=')).join('\n'));
    expect(image).toBeDefined();
    expect(image).toBe(heap(readFileSync(repoPath('deploy/kubernetes/deployment.yaml'), 'utf8')));
  });

  it('builds on a pinned release of a supported Node.js LTS line that package.json\'s engines accept', () => {
    const dockerfile = readFileSync(repoPath('Dockerfile'), 'utf8');
    const nodeImage = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1] ?? '';
    const version = /^node:(\d+)\.(\d+)\.(\d+)-alpine(?:@sha256:[0-9a-f]{64})?$/.exec(nodeImage);
    expect(version, nodeImage).not.toBeNull();
    const major = Number(version?.[1]);
    expect([22, 24]).toContain(major);
    // `^N.x` accepts major N alone, `>=N.x` every major from N on.
    const accepts = (range: string): boolean => {
      const m = /^(\^|>=)(\d+)\./.exec(range.trim());
      return m !== null && (m[1] === '^' ? Number(m[2]) === major : Number(m[2]) <= major);
    };
    const engines = String(obj(obj(JSON.parse(readFileSync(repoPath('package.json'), 'utf8')))['engines'])['node']);
    expect(engines.split('||').some(accepts), engines).toBe(true);
    // Every other base image is pinned to a version too.
    for (const stage of stages.filter((s) => !s.from.startsWith('$') && !stages.some((o) => o.name === s.from))) {
      expect(stage.from, stage.name).toMatch(/^[\w./-]+:\d+\.\d+(\.\d+)?(-[\w.]+)?(@sha256:[0-9a-f]{64})?$/);
    }
  });

  it('keeps development tools out of the server image: tsx and the demo\'s needs reach only the demo stage', () => {
    const pkg = obj(JSON.parse(readFileSync(repoPath('package.json'), 'utf8')));
    const runtimeDeps = Object.keys(obj(pkg['dependencies']));
    for (const tool of ['tsx', 'typescript', '@azure/identity', '@opentelemetry/sdk-node', '@opentelemetry/sdk-trace-node']) expect(runtimeDeps, tool).not.toContain(tool);
    expect(Object.keys(obj(pkg['devDependencies']))).toContain('tsx');
    const demo = stages.find((s) => s.name === 'demo') as Stage;
    expect(demo.lines.join('\n')).toMatch(/COPY --from=build \/app\/node_modules/);
    expect(demo.lines).toContain('ENTRYPOINT ["node", "--import", "tsx"]');
  });

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    const ignored = dockerignorePatterns();
    let copies = 0;
    for (const stage of stages) {
      for (const line of stage.lines) {
        if (!/^COPY\s/i.test(line) || /--from=/.test(line)) continue;
        const parts = line.split(/\s+/).slice(1).filter((p) => !p.startsWith('--'));
        for (const src of parts.slice(0, -1)) {
          copies++;
          expect(existsSync(repoPath(src)), `${stage.name}: ${src}`).toBe(true);
          expect(ignored.some((re) => re.test(src.replace(/^\.\//, ''))), `${stage.name}: ${src} is excluded by .dockerignore`).toBe(false);
        }
      }
    }
    expect(copies).toBeGreaterThanOrEqual(8);
    // ... and the heavy or secret things stay out of the context.
    for (const path of ['node_modules', 'dist', 'certs', '.git', 'test']) expect(ignored.some((re) => re.test(path)), path).toBe(true);
  });
});
