/**
 * The HTTP client the key store uses when none is injected: undici's fetch over an agent whose
 * connect, header and body timeouts equal the key store's fetch timeout, so that even a request
 * whose own timer were lost could not outlive that bound (undici's defaults are 300 s).
 */
import { Agent, fetch as undiciFetch } from 'undici';

export interface EntraHttpClient {
  readonly fetch: typeof globalThis.fetch;
  /** Closes the agent's connections. */
  close(): Promise<void>;
}

export function createEntraHttpClient(timeoutMs: number): EntraHttpClient {
  const agent = new Agent({
    connect: { timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: 30_000,
  });
  const fetch = ((input: string | URL, init?: RequestInit) =>
    undiciFetch(input, { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher: agent })) as unknown as typeof globalThis.fetch;
  return {
    fetch,
    close: () => agent.close().catch(() => {}),
  };
}
