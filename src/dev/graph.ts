/**
 * The slice of Microsoft Graph the emulator serves for group overage:
 * `POST /v1.0/users/{id}/checkMemberGroups` and `POST /v1.0/servicePrincipals/{id}/checkMemberGroups`
 * over memberships set by the test or dev setup, with switches for throttling (429 with
 * `Retry-After`) and an outage (503). Every instance holds its own state.
 */

export interface GraphEmulator {
  /** The groups (already flattened: transitive) an object id is a member of. */
  setMemberships(objectId: string, groupIds: readonly string[]): void;
  /** While set, every call answers 429 with this `Retry-After` (seconds); undefined ends it. */
  setThrottle(retryAfterSeconds: number | undefined): void;
  /** `false` → every call answers 503. */
  setAvailable(up: boolean): void;
  /** checkMemberGroups calls received (answered or not). */
  readonly calls: number;
  /** Answers a Graph path, or undefined when the path is not Graph's. */
  handle(method: string, path: string, authorization: string | undefined, body: () => Promise<Buffer>): Promise<GraphAnswer | undefined>;
}

export type GraphAnswer = readonly [status: number, body: unknown, headers: Record<string, string>];

const ROUTE = /^\/v1\.0\/(users|servicePrincipals)\/([^/]+)\/checkMemberGroups$/;
/** Graph's limit of ids per checkMemberGroups call. */
const MAX_IDS = 20;

const graphError = (status: number, code: string, message: string, headers: Record<string, string> = {}): GraphAnswer => [
  status,
  { error: { code, message } },
  headers,
];

/**
 * The overage claims Entra puts in a token instead of `groups` when the caller is in too many:
 * `_claim_sources` names the retired Azure AD Graph, which a resource server must not call.
 */
export function groupOverageClaims(tenant: string, objectId: string): Record<string, unknown> {
  return {
    _claim_names: { groups: 'src1' },
    _claim_sources: { src1: { endpoint: `https://graph.windows.net/${tenant}/users/${objectId}/getMemberObjects` } },
  };
}

export function createGraphEmulator(): GraphEmulator {
  const memberships = new Map<string, ReadonlySet<string>>();
  let throttle: number | undefined;
  let available = true;
  let calls = 0;

  return {
    setMemberships(objectId, groupIds) {
      memberships.set(objectId.toLowerCase(), new Set(groupIds.map((g) => g.toLowerCase())));
    },
    setThrottle(seconds) {
      throttle = seconds;
    },
    setAvailable(up) {
      available = up;
    },
    get calls() {
      return calls;
    },
    async handle(method, path, authorization, body) {
      const m = ROUTE.exec(path);
      if (!m) return path.startsWith('/v1.0/') ? graphError(404, 'Request_ResourceNotFound', 'No such Graph endpoint on the emulator.') : undefined;
      if (method !== 'POST') return graphError(405, 'Request_BadRequest', 'Use POST.', { allow: 'POST' });
      calls++;
      if (!available) return graphError(503, 'serviceNotAvailable', 'The emulated Graph is set unavailable.', { 'retry-after': '1' });
      if (throttle !== undefined) return graphError(429, 'TooManyRequests', 'Too many requests.', { 'retry-after': String(throttle) });
      if (!authorization?.startsWith('Bearer ') || authorization.length <= 'Bearer '.length) {
        return graphError(401, 'InvalidAuthenticationToken', 'Access token is empty.');
      }
      let groupIds: unknown;
      try {
        groupIds = (JSON.parse((await body()).toString('utf8')) as { groupIds?: unknown }).groupIds;
      } catch {
        return graphError(400, 'Request_BadRequest', 'The body is not JSON.');
      }
      if (!Array.isArray(groupIds) || groupIds.length === 0 || groupIds.length > MAX_IDS || !groupIds.every((g) => typeof g === 'string')) {
        return graphError(400, 'Request_BadRequest', `groupIds must be 1 to ${MAX_IDS} strings.`);
      }
      const held = memberships.get(decodeURIComponent(m[2] ?? '').toLowerCase()) ?? new Set<string>();
      return [200, { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)', value: groupIds.filter((g: string) => held.has(g.toLowerCase())) }, {}];
    },
  };
}
