import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  loadPackageDefinition,
  type ChannelCredentials,
  type Client as GrpcClient,
  type Metadata,
  type ServiceClientConstructor,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import { UNDECODABLE_REQUEST } from '../core/request.js';

/**
 * Envoy's own API protos, as published inside the @grpc/grpc-js-xds package (see protos/README.md).
 * Nothing is copied into this repository.
 */
export function envoyProtoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const root = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(root, d));
}

export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

type AuthorizationClientConstructor = ServiceClientConstructor;

function loadAuthorization(): AuthorizationClientConstructor {
  const definition = loadSync('envoy/service/auth/v3/external_auth.proto', {
    ...PROTO_LOADER_OPTIONS,
    includeDirs: envoyProtoIncludeDirs(),
  });
  const pkg = loadPackageDefinition(definition) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: AuthorizationClientConstructor } } } };
  };
  return pkg.envoy.service.auth.v3.Authorization;
}

/**
 * The envoy.service.auth.v3.Authorization service definition, loaded once at start-up. Its Check
 * request decoder never throws: bytes that are not a CheckRequest become `UNDECODABLE_REQUEST`,
 * which the decision flow denies with `request_malformed` like any other unreadable request,
 * instead of grpc-js failing the call. A response that is already encoded (a Buffer, see
 * check-response.ts) is sent as it is.
 */
export function loadAuthorizationService(): ServiceDefinition {
  const service = loadAuthorization().service;
  const check = service['Check'];
  if (!check) throw new Error('envoy.service.auth.v3.Authorization has no Check method');
  const requestDeserialize = (bytes: Buffer): unknown => {
    try {
      return check.requestDeserialize(bytes);
    } catch {
      return UNDECODABLE_REQUEST;
    }
  };
  const responseSerialize = (value: unknown): Buffer => (Buffer.isBuffer(value) ? value : check.responseSerialize(value));
  return { ...service, Check: { ...check, requestDeserialize, responseSerialize } };
}

/** A client for Authorization/Check (the `check` command and the tests play Envoy with it). */
export function createAuthorizationClient(address: string, credentials: ChannelCredentials): AuthorizationClient {
  const Client = loadAuthorization();
  return new Client(address, credentials) as unknown as AuthorizationClient;
}

export interface AuthorizationClient extends GrpcClient {
  Check(request: unknown, callback: (err: ServiceError | null, response?: Record<string, unknown>) => void): void;
  Check(
    request: unknown,
    metadata: Metadata,
    callback: (err: ServiceError | null, response?: Record<string, unknown>) => void,
  ): void;
}
