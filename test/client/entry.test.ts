import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as client from '../../src/client/index.js';

const CLIENT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'client');

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
        'systemClock',
      ].sort(),
    );
  });

  it('builds each supported @azure/identity credential kind without contacting anyone', () => {
    const kinds = [
      client.createAzureCredential({ kind: 'managedIdentity' }),
      client.createAzureCredential({ kind: 'managedIdentity', clientId: 'c11e0000-0000-4000-8000-000000000001' }),
      client.createAzureCredential({ kind: 'workloadIdentity', clientId: 'c', tenantId: 'c0ffee00-0000-4000-8000-000000000001', tokenFilePath: '/var/run/token' }),
      client.createAzureCredential({ kind: 'clientSecret', tenantId: 'c0ffee00-0000-4000-8000-000000000001', clientId: 'c', clientSecret: 's' }),
      client.createAzureCredential({ kind: 'clientCertificate', tenantId: 'c0ffee00-0000-4000-8000-000000000001', clientId: 'c', certificatePath: '/nonexistent.pem' }),
    ];
    expect(kinds.map((k) => k.constructor.name)).toEqual([
      'ManagedIdentityCredential',
      'ManagedIdentityCredential',
      'WorkloadIdentityCredential',
      'ClientSecretCredential',
      'ClientCertificateCredential',
    ]);
    for (const k of kinds) expect(typeof k.getToken).toBe('function');
  });
});
