import { status } from '@grpc/grpc-js';

/**
 * Why a token could not be had, in words that are safe to show: the source's description and a
 * reason that has been scrubbed of every secret the source knows about and of anything shaped like
 * a JWT. The original error is deliberately NOT kept as `cause`: library errors can carry request
 * objects, and a request to a token endpoint carries the client secret.
 */
export class TokenAcquisitionError extends Error {
  /**
   * gRPC status a call fails with when its credentials cannot be produced: UNAVAILABLE when the
   * failure is transient (so a channel's retry policy may retry the call), else UNAUTHENTICATED.
   */
  readonly code: status.UNAVAILABLE | status.UNAUTHENTICATED;
  /** The name of the underlying error (`AuthenticationError`, `AbortError`, ...), for logs and tests. */
  readonly reasonName: string;
  /** The scrubbed reason alone, without the source description. */
  readonly reason: string;
  /** A timeout, a network failure or a throttling/server-error answer: trying again later may work. */
  readonly transient: boolean;

  constructor(sourceDescription: string, reason: string, reasonName = 'Error', transient = false) {
    super(`could not acquire an Entra access token (${sourceDescription}): ${reason}`);
    this.name = 'TokenAcquisitionError';
    this.reasonName = reasonName;
    this.reason = reason;
    this.transient = transient;
    this.code = transient ? status.UNAVAILABLE : status.UNAUTHENTICATED;
  }
}

/** HTTP answers of a token endpoint that say "try again later" rather than "you may not". */
const TRANSIENT_HTTP = new Set([408, 429, 500, 502, 503, 504]);

/** Socket and DNS failures (Node and undici codes) that a later attempt can get past. */
const TRANSIENT_NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
]);

export const isTransientHttpStatus = (httpStatus: number): boolean => TRANSIENT_HTTP.has(httpStatus);

/**
 * Whether a failure to get a token is worth retrying: timeouts, network failures (also when
 * wrapped, as fetch wraps them in `cause`) and 408/429/5xx answers (@azure/identity's
 * `AuthenticationError.statusCode`, `RestError.statusCode`). A refused credential, a missing
 * managed identity (`CredentialUnavailableError`) or a bad configuration is not.
 */
export function isTransientError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof TokenAcquisitionError) return err.transient;
  if (err.name === 'CredentialUnavailableError') return false;
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return true;
  const codeOf = (e: unknown): unknown => (e as { code?: unknown } | undefined)?.code;
  if ([codeOf(err), codeOf(err.cause)].some((c) => typeof c === 'string' && TRANSIENT_NETWORK.has(c))) return true;
  const httpStatus = (err as { statusCode?: unknown }).statusCode ?? (err as { status?: unknown }).status;
  return typeof httpStatus === 'number' && isTransientHttpStatus(httpStatus);
}

const JWT_LIKE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;
const MAX_REASON = 400;

/**
 * Removes every listed secret (and its URL-encoded form, as it appears in a form body) and every
 * JWT-shaped string from `text`, then caps its length.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    for (const form of new Set([secret, encodeURIComponent(secret), new URLSearchParams({ s: secret }).toString().slice(2)])) {
      out = out.split(form).join('[redacted]');
    }
  }
  out = out.replace(JWT_LIKE, '[redacted token]');
  return out.length > MAX_REASON ? `${out.slice(0, MAX_REASON)}…` : out;
}

/** Describes any thrown value in one line, without stack or cause chain (those may hold secrets). */
export function describeError(err: unknown): { name: string; message: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const causeCode = (err.cause as { code?: unknown } | undefined)?.code;
    const extra = [code, causeCode].filter((c) => typeof c === 'string' && c.length > 0 && c.length < 64);
    const message = err.message.split('\n')[0] ?? '';
    return { name: err.name, message: extra.length > 0 ? `${message} (${extra.join(', ')})` : message };
  }
  return { name: typeof err, message: String(err) };
}
