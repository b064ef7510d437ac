import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clientCredentialsTokenSource, createTokenProvider, defaultScope, TokenAcquisitionError } from '../../src/client/index.js';
import { ManualClock } from './fakes.js';
import { startTokenEndpoint, type TokenEndpoint } from './token-endpoint.js';

const SECRET = 'Zq8~demo.secret+/=value';
const CLIENT_ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';

let endpoint: TokenEndpoint;
beforeEach(async () => {
  endpoint = await startTokenEndpoint();
});
afterEach(async () => {
  await endpoint.close();
});

describe('client-credentials token source', () => {
  it('posts the client-credentials form and derives the expiry from expires_in', async () => {
    endpoint.reply = () => ({ status: 200, body: JSON.stringify({ token_type: 'Bearer', expires_in: 3599, access_token: 'at-1' }) });
    const clock = new ManualClock();
    const source = clientCredentialsTokenSource({
      tokenEndpoint: endpoint.url,
      clientId: CLIENT_ID,
      clientSecret: SECRET,
      scope: defaultScope('api://entra-authz-demo'),
      clock,
    });
    const info = await source.fetchToken(new AbortController().signal);
    expect(info).toEqual({ token: 'at-1', expiresAt: clock.now() + 3599_000 });
    const [req] = endpoint.requests;
    expect(req?.contentType).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(req?.form ?? [])).toEqual({
      grant_type: 'client_credentials',
      client_id: CLIENT_ID,
      client_secret: SECRET,
      scope: 'api://entra-authz-demo/.default',
    });
  });

  it('reports an error answer with its status and Entra error code, never the secret', async () => {
    // A misbehaving endpoint that echoes the secret back must not get it into the message.
    endpoint.reply = (req) => ({
      status: 401,
      body: JSON.stringify({
        error: 'invalid_client',
        error_description: `AADSTS7000215: Invalid client secret provided: ${req.form.get('client_secret') ?? ''}\r\nTrace ID: x`,
      }),
    });
    const provider = createTokenProvider({
      source: clientCredentialsTokenSource({ tokenEndpoint: endpoint.url, clientId: CLIENT_ID, clientSecret: SECRET, scope: 'api://x/.default' }),
    });
    const err = (await provider.getToken().catch((e: unknown) => e)) as TokenAcquisitionError;
    expect(err).toBeInstanceOf(TokenAcquisitionError);
    expect(err.code).toBe(16);
    expect(err.message).toContain('HTTP 401');
    expect(err.message).toContain('invalid_client');
    expect(err.message).toContain(`client ${CLIENT_ID}`);
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain(encodeURIComponent(SECRET));
    expect(err.message).not.toContain('Trace ID');
  });

  it('reports a non-JSON or incomplete answer without guessing', async () => {
    const source = clientCredentialsTokenSource({ tokenEndpoint: endpoint.url, clientId: CLIENT_ID, clientSecret: SECRET, scope: 'api://x/.default' });
    endpoint.reply = () => ({ status: 502, body: '<html>bad gateway</html>', contentType: 'text/html' });
    await expect(source.fetchToken(new AbortController().signal)).rejects.toThrow(/HTTP 502 \(no error code\)/);
    endpoint.reply = () => ({ status: 200, body: JSON.stringify({ access_token: 'x' }) });
    await expect(source.fetchToken(new AbortController().signal)).rejects.toThrow(/expires_in/);
    endpoint.reply = () => ({ status: 200, body: JSON.stringify({ access_token: 'x', expires_in: 60, token_type: 'pop' }) });
    await expect(source.fetchToken(new AbortController().signal)).rejects.toThrow(/unsupported token_type/);
  });

  it('refuses to send a secret over plain http to a non-loopback host unless explicitly allowed', () => {
    const options = { tokenEndpoint: 'http://entra:9400/t/oauth2/v2.0/token', clientId: CLIENT_ID, clientSecret: SECRET, scope: 'api://x/.default' };
    expect(() => clientCredentialsTokenSource(options)).toThrow(/plain http/);
    expect(() => clientCredentialsTokenSource({ ...options, allowInsecureHttp: true })).not.toThrow();
    expect(() => clientCredentialsTokenSource({ ...options, tokenEndpoint: 'https://login.microsoftonline.com/t/oauth2/v2.0/token' })).not.toThrow();
  });

  it('names the scope form Entra expects for client credentials', () => {
    expect(defaultScope('api://orders')).toBe('api://orders/.default');
    expect(defaultScope('api://orders/')).toBe('api://orders/.default');
    expect(defaultScope('api://orders/.default')).toBe('api://orders/.default');
  });

  it('marks 429 and 5xx answers as transient and 4xx refusals as not', async () => {
    const source = clientCredentialsTokenSource({ tokenEndpoint: endpoint.url, clientId: CLIENT_ID, clientSecret: SECRET, scope: 'api://x/.default' });
    for (const [httpStatus, transient] of [[429, true], [500, true], [503, true], [400, false], [401, false]] as const) {
      endpoint.reply = () => ({ status: httpStatus, body: JSON.stringify({ error: 'e' }) });
      const err = (await source.fetchToken(new AbortController().signal).catch((e: unknown) => e)) as TokenAcquisitionError;
      expect(err, String(httpStatus)).toBeInstanceOf(TokenAcquisitionError);
      expect(err.transient, String(httpStatus)).toBe(transient);
    }
  });
});
