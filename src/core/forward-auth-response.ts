import type { ForwardAuthShape } from './forward-auth.js';
import { REASONS } from './reasons.js';
import type { ResponsePlan } from './response.js';

/** The HTTP answer to an authorization request: what the proxy turns into allow or deny. */
export interface ForwardAuthAnswer {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

/**
 * Envoy's http_service removes the request headers named here (comma-separated) before the request
 * goes upstream: the one way an HTTP authorization server can strip client-sent identity headers.
 */
export const ENVOY_HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove';

const NO_STORE: readonly [string, string] = ['cache-control', 'no-store'];

/**
 * The status a deny is answered with. The reason code stays in the body and the audit record.
 * - nginx `auth_request` turns any status other than 2xx, 401 and 403 into a 500: every other deny
 *   is answered with 403.
 * - Envoy's http_service treats a 5xx answer as an authorization *error*, which
 *   `failure_mode_allow: true` turns into an allow: a deny (`internal_error` included) is never
 *   answered with 5xx there. Only "cannot decide" (keys unavailable) is, like a failed gRPC Check.
 */
function denyStatus(shape: ForwardAuthShape | undefined, status: number): number {
  if (shape === 'nginx') return status === 401 || status === 403 ? status : 403;
  if (shape === 'envoy') return status >= 500 ? 403 : status;
  return status;
}

/** The status `toForwardAuthAnswer` answers `plan` with. */
export function forwardAuthStatus(plan: ResponsePlan, shape: ForwardAuthShape | undefined): number {
  if (plan.kind === 'unavailable') return REASONS.keys_unavailable.httpStatus;
  return plan.kind === 'deny' ? denyStatus(shape, plan.httpStatus) : 200;
}

/**
 * ResponsePlan → HTTP answer. An allow is 200 with the identity headers for the upstream. Headers
 * the plan removes are handed over empty in the nginx and forward-auth shapes (the shipped proxy
 * configurations copy them, so an empty value replaces a client-sent copy) and, for Envoy, named in
 * `x-envoy-auth-headers-to-remove`. The credential header is never echoed; proxies that should
 * drop it are configured to.
 */
export function toForwardAuthAnswer(plan: ResponsePlan, shape: ForwardAuthShape | undefined, tokenHeader: string): ForwardAuthAnswer {
  if (plan.kind === 'unavailable') {
    const body = JSON.stringify({ error: plan.message, message: REASONS.keys_unavailable.message });
    return { status: forwardAuthStatus(plan, shape), headers: [['content-type', 'application/json'], NO_STORE], body };
  }
  if (plan.kind === 'deny') {
    return { status: forwardAuthStatus(plan, shape), headers: [...plan.headers, NO_STORE], body: plan.body };
  }
  const headers: (readonly [string, string])[] = [...plan.setHeaders, NO_STORE];
  if (shape === 'envoy') {
    if (plan.removeHeaders.length > 0) headers.push([ENVOY_HEADERS_TO_REMOVE, plan.removeHeaders.join(',')]);
  } else {
    for (const name of plan.removeHeaders) if (name !== tokenHeader) headers.push([name, '']);
  }
  return { status: forwardAuthStatus(plan, shape), headers, body: '' };
}
