/**
 * The HTTP-mode baseline: a node:http server that answers every request 200 with an empty body,
 * with the product's HTTP listener's keep-alive. Run as its own process, like the product server;
 * prints its address as one JSON line.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const server = createServer({ keepAliveTimeout: 75_000 }, (_req, res) => {
  res.writeHead(200, { 'content-length': '0' });
  res.end();
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ address: `127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
