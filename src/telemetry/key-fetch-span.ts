import { SpanKind, SpanStatusCode, type Attributes, type Context, type Tracer } from '@opentelemetry/api';
import { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL } from '@opentelemetry/semantic-conventions';
import { errorName } from './check-span.js';
import { ATTR, PHASE } from './trace-names.js';

type Fetch = typeof globalThis.fetch;

/** The URL without user info and with every query value replaced: only names may reach a span. */
export function redactedUrl(url: URL): string {
  const out = new URL(url.href);
  out.username = '';
  out.password = '';
  for (const name of new Set(out.searchParams.keys())) out.searchParams.set(name, 'REDACTED');
  return out.href;
}

/** What differs between the kinds of outbound call traced: span name and own attributes. */
interface ClientCallShape {
  readonly name: string;
  attributes(url: URL): Attributes;
  /** Attribute set to `ok` / `error` once the call ends, if any. */
  readonly resultAttribute?: string;
}

/**
 * Wraps a `fetch` so that every request becomes a CLIENT span with OpenTelemetry's HTTP client
 * attributes. Its parent is the check phase that waited for it (from `parent()`), or none for
 * background work. The span covers the HTTP exchange up to the response headers. Request headers
 * (a Graph call's bearer token among them) never reach the span.
 */
function traceClientCalls(fetch: Fetch, tracer: Tracer, parent: () => Context, shape: ClientCallShape): Fetch {
  const result = (value: 'ok' | 'error'): Attributes => (shape.resultAttribute === undefined ? {} : { [shape.resultAttribute]: value });
  return async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request?.url ?? String(input));
    const span = tracer.startSpan(
      shape.name,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: (init?.method ?? request?.method ?? 'GET').toUpperCase(),
          [ATTR_URL_FULL]: redactedUrl(url),
          [ATTR_SERVER_ADDRESS]: url.hostname,
          [ATTR_SERVER_PORT]: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
          ...shape.attributes(url),
        },
      },
      parent(),
    );
    try {
      const res = await fetch(input, init);
      span.setAttributes({ [ATTR_HTTP_RESPONSE_STATUS_CODE]: res.status, ...result(res.ok ? 'ok' : 'error') });
      if (!res.ok) {
        span.setAttribute(ATTR.errorType, String(res.status));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      return res;
    } catch (err) {
      span.setAttributes({ ...result('error'), [ATTR.errorType]: errorName(err) });
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  };
}

/**
 * The key store's `fetch`: every discovery or JWKS request a `keys.fetch` span. The key store's
 * own verdict on the body goes to metrics.
 */
export function traceKeyFetches(fetch: Fetch, tracer: Tracer, parent: () => Context): Fetch {
  return traceClientCalls(fetch, tracer, parent, {
    name: PHASE.keyFetch,
    attributes: (url) => ({ [ATTR.keyFetchKind]: url.pathname.endsWith('/.well-known/openid-configuration') ? 'discovery' : 'jwks' }),
    resultAttribute: ATTR.keyFetchResult,
  });
}

/**
 * The group resolver's `fetch`: every Microsoft Graph call a `graph.call` span, a child of the
 * check that waited for it. How the lookup was answered (cache, throttled) goes to metrics.
 */
export function traceGraphCalls(fetch: Fetch, tracer: Tracer, parent: () => Context): Fetch {
  return traceClientCalls(fetch, tracer, parent, { name: PHASE.graphCall, attributes: () => ({}) });
}
