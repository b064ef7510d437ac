import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadAzureIdentity } from '../../src/client/azure.js';
import * as client from '../../src/client/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLIENT_DIR = join(ROOT, 'src', 'client');

describe('the caller-side helper entry point', () => {
  it('imports nothing from the server: only its own modules and published packages', () => {
    for (const file of readdirSync(CLIENT_DIR).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(join(CLIENT_DIR, file), 'utf8');
      for (const m of source.matchAll(/\bfrom\s+'([^']+)'/g)) {
        const spec = m[1] as string;
        if (spec.startsWith('.')) expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[\w-]+\.js$/);
        else expect(spec, `${file} imports ${spec}`).toMatch(/^(node:|@grpc\/grpc-js$|@azure\/identity$)/);
      }
    }
  });

  it('exports the credentials, token sources and provider', () => {
    expect(Object.keys(client).sort()).toEqual(
      [
        'TokenAcquisitionError',
        'clientCredentialsTokenSource',
        'createAzureCredential',
        'createTokenProvider',
        'credentialTokenSource',
        'defaultScope',
        'entraCallCredentials',
        'entraInterceptor',
        'entraMetadata',
        'systemClock',
      ].sort(),
    );
  });

  it('builds each supported @azure/identity credential kind without contacting anyone', () => {
    const kinds = [
      client.createAzureCredential(),
      client.createAzureCredential({ kind: 'default', managedIdentityClientId: 'c11e0000-0000-4000-8000-000000000001' }),
      client.createAzureCredential({ kind: 'managedIdentity' }),
      client.createAzureCredential({ kind: 'managedIdentity', clientId: 'c11e0000-0000-4000-8000-000000000001' }),
      client.createAzureCredential({ kind: 'workloadIdentity', clientId: 'c', tenantId: 'c0ffee00-0000-4000-8000-000000000001', tokenFilePath: '/var/run/token' }),
      client.createAzureCredential({ kind: 'clientSecret', tenantId: 'c0ffee00-0000-4000-8000-000000000001', clientId: 'c', clientSecret: 's' }),
      client.createAzureCredential({ kind: 'clientCertificate', tenantId: 'c0ffee00-0000-4000-8000-000000000001', clientId: 'c', certificatePath: '/nonexistent.pem' }),
    ];
    expect(kinds.map((k) => k.constructor.name)).toEqual([
      'DefaultAzureCredential',
      'DefaultAzureCredential',
      'ManagedIdentityCredential',
      'ManagedIdentityCredential',
      'WorkloadIdentityCredential',
      'ClientSecretCredential',
      'ClientCertificateCredential',
    ]);
    for (const k of kinds) expect(typeof k.getToken).toBe('function');
  });

  it('names the package to install when @azure/identity is missing', () => {
    const empty = mkdtempSync(join(tmpdir(), 'entra-authz-no-identity-'));
    try {
      expect(() => loadAzureIdentity(pathToFileURL(join(empty, 'caller.js')))).toThrow(/npm install @azure\/identity/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('keeps @azure/identity out of the server\'s production install: an optional peer of this entry only', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    expect(pkg['dependencies']?.['@azure/identity']).toBeUndefined();
    expect(pkg['peerDependenciesMeta']?.['@azure/identity']).toEqual({ optional: true });
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    // npm ci --omit=dev leaves out every lockfile entry marked dev.
    expect(lock.packages['node_modules/@azure/identity']?.dev).toBe(true);
  });
});
