import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { canConnect, freePort, listenOnLoopback } from './loopback.js';

describe('loopback ports for the real-proxy suites', () => {
  it('starts a server on an ephemeral loopback port that then accepts connections', async () => {
    const server = createServer((socket) => socket.destroy());
    const port = await listenOnLoopback(server);
    expect(port).toBeGreaterThan(0);
    expect(await canConnect(port)).toBe(true);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('hands out a loopback port nothing listens on', async () => {
    expect(await canConnect(await freePort())).toBe(false);
  });
});
