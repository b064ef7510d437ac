import { SpanKind, SpanStatusCode, type Context, type Tracer } from '@opentelemetry/api';
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

/**
 * Wraps the key store's `fetch` so that every discovery or JWKS request becomes a `keys.fetch`
 * CLIENT span with OpenTelemetry's HTTP client attributes. Its parent is the check phase that
 * waited for it (from `parent()`), or none for a background refresh. The span covers the HTTP
 * exchange up to the response headers; the key store's own verdict on the body goes to metrics.
 */
export function traceKeyFetches(fetch: Fetch, tracer: Tracer, parent: () => Context): Fetch {
  return async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request?.url ?? String(input));
    const span = tracer.startSpan(
      PHASE.keyFetch,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: (init?.method ?? request?.method ?? 'GET').toUpperCase(),
          [ATTR_URL_FULL]: redactedUrl(url),
          [ATTR_SERVER_ADDRESS]: url.hostname,
          [ATTR_SERVER_PORT]: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
          [ATTR.keyFetchKind]: url.pathname.endsWith('/.well-known/openid-configuration') ? 'discovery' : 'jwks',
        },
      },
      parent(),
    );
    try {
      const res = await fetch(input, init);
      span.setAttributes({ [ATTR_HTTP_RESPONSE_STATUS_CODE]: res.status, [ATTR.keyFetchResult]: res.ok ? 'ok' : 'error' });
      if (!res.ok) {
        span.setAttribute(ATTR.errorType, String(res.status));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      return res;
    } catch (err) {
      span.setAttributes({ [ATTR.keyFetchResult]: 'error', [ATTR.errorType]: errorName(err) });
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  };
}
