import { startOrdersServer } from './orders.js';

// Entry point of the compose `orders` service: the demo upstream behind Envoy.
const listen = process.env['LISTEN'] ?? '0.0.0.0:50051';
startOrdersServer(listen).then(
  ({ server, port }) => {
    console.log(JSON.stringify({ msg: 'orders demo service listening', listen, port }));
    const stop = (): void => server.tryShutdown(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
