import { DEMO } from '../src/dev/demo.js';

/**
 * Settings of the demo programs, from the environment (docker-compose.yml sets them), defaulting
 * to the emulator's fixed DEMO identities. Point them at a real tenant to try a real Entra ID.
 */
export interface DemoSettings {
  /** Envoy's mTLS listener, host:port. */
  readonly envoyAddress: string;
  /** TLS name Envoy's certificate is checked against. */
  readonly envoyServerName: string;
  readonly tokenEndpoint: string;
  /** Client-credentials scope of the protected API. */
  readonly scope: string;
  readonly reader: { readonly clientId: string; readonly clientSecret: string };
  readonly writer: { readonly clientId: string; readonly clientSecret: string };
  /** Directory with ca.crt, demo-client.crt and demo-client.key (scripts/gen-certs.sh). */
  readonly certDir: string;
  /** Plain-http token endpoint allowed (the compose network's emulator). */
  readonly allowInsecureTokenEndpoint: boolean;
}

export function demoSettings(env: NodeJS.ProcessEnv = process.env): DemoSettings {
  const authority = env['ENTRA_AUTHORITY'] ?? 'http://entra:9400';
  const tenant = env['ENTRA_TENANT_ID'] ?? DEMO.tenantId;
  return {
    envoyAddress: env['ENVOY_ADDRESS'] ?? 'envoy:8443',
    envoyServerName: env['ENVOY_SERVER_NAME'] ?? 'envoy',
    tokenEndpoint: env['TOKEN_ENDPOINT'] ?? `${authority}/${tenant}/oauth2/v2.0/token`,
    scope: env['API_SCOPE'] ?? `${DEMO.api.identifierUri}/.default`,
    reader: {
      clientId: env['READER_CLIENT_ID'] ?? DEMO.clients.reader.clientId,
      clientSecret: env['READER_CLIENT_SECRET'] ?? DEMO.clients.reader.clientSecret,
    },
    writer: {
      clientId: env['WRITER_CLIENT_ID'] ?? DEMO.clients.writer.clientId,
      clientSecret: env['WRITER_CLIENT_SECRET'] ?? DEMO.clients.writer.clientSecret,
    },
    certDir: env['CERT_DIR'] ?? '/certs',
    allowInsecureTokenEndpoint: env['ALLOW_INSECURE_TOKEN_ENDPOINT'] === 'true',
  };
}
