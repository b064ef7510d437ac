import { deepFreeze } from '../core/values.js';
import type { EmulatorApi, EmulatorClient } from './types.js';

/**
 * Fixed demo identities for dev mode, the README and tests. The GUIDs are made up but well-formed
 * (lower-case, RFC 4122 version/variant nibbles) and easy to recognise in logs: tenants start with
 * `c0ffee00`, the API with `a11ce000`, clients with `c11e0000`. The secrets are public on purpose:
 * they only ever unlock the local emulator.
 */
export interface DemoValues {
  /** The tenant the emulator serves by default. */
  readonly tenantId: string;
  /** A well-formed tenant the default emulator does NOT serve: for "tenant not allowed" tests. */
  readonly foreignTenantId: string;
  /** The protected API (v2 tokens: `aud` is its appId GUID). */
  readonly api: EmulatorApi;
  readonly clients: {
    /** Holds `Orders.Read` and `Orders.Write`. */
    readonly writer: EmulatorClient;
    /** Holds `Orders.Read` only. */
    readonly reader: EmulatorClient;
    /** A valid client of the tenant with no app role on the API: its tokens carry no `roles`. */
    readonly noRoles: EmulatorClient;
  };
}

const tenantId = 'c0ffee00-0000-4000-8000-000000000001';
const apiAppId = 'a11ce000-0000-4000-8000-000000000001';

export const DEMO: DemoValues = deepFreeze({
  tenantId,
  foreignTenantId: 'c0ffee00-0000-4000-8000-0000000000ff',
  api: {
    appId: apiAppId,
    identifierUri: 'api://entra-authz-demo',
    accessTokenVersion: 2,
    appRoles: ['Orders.Read', 'Orders.Write'],
    scopes: ['access_as_user', 'Orders.Read'],
  },
  clients: {
    writer: {
      clientId: 'c11e0000-0000-4000-8000-000000000001',
      clientSecret: 'demo-writer-secret',
      displayName: 'orders-writer',
      tenantId,
      roles: { [apiAppId]: ['Orders.Read', 'Orders.Write'] },
    },
    reader: {
      clientId: 'c11e0000-0000-4000-8000-000000000002',
      clientSecret: 'demo-reader-secret',
      displayName: 'orders-reader',
      tenantId,
      roles: { [apiAppId]: ['Orders.Read'] },
    },
    noRoles: {
      clientId: 'c11e0000-0000-4000-8000-000000000003',
      clientSecret: 'demo-noroles-secret',
      displayName: 'no-roles',
      tenantId,
      roles: {},
    },
  },
});
