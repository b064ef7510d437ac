import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadPackageDefinition,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type GrpcObject,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceClientConstructor,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** Loads demo/protos/orders.proto (keepCase: field names as in the .proto). */
export function loadOrdersService(): ServiceClientConstructor {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'protos', 'orders.proto');
  const def = loadSync(file, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = loadPackageDefinition(def) as unknown as { demo: { orders: { v1: GrpcObject } } };
  return pkg.demo.orders.v1['Orders'] as ServiceClientConstructor;
}

export interface Caller {
  oid: string;
  tid: string;
  app_id: string;
  roles: string;
  token_type: string;
  decision_id: string;
  peer_uri: string;
}

export interface Order {
  id: string;
  item: string;
  quantity: number;
  caller?: Caller;
}

/**
 * The demo upstream: a tiny in-memory Orders service. It listens in plain HTTP/2 on the compose
 * network, where only Envoy can reach it, and reports back who Envoy said the caller is.
 */

const first = (md: Metadata, key: string): string => String(md.get(key)[0] ?? '');

function callerOf(md: Metadata): Caller {
  const xfcc = first(md, 'x-forwarded-client-cert');
  return {
    oid: first(md, 'x-entra-oid'),
    tid: first(md, 'x-entra-tid'),
    app_id: first(md, 'x-entra-app-id'),
    roles: first(md, 'x-entra-roles'),
    token_type: first(md, 'x-entra-token-type'),
    decision_id: first(md, 'x-entra-decision-id'),
    peer_uri: /(?:^|;)URI=([^;,]*)/.exec(xfcc)?.[1] ?? '',
  };
}

export async function startOrdersServer(listen: string): Promise<{ server: Server; port: number }> {
  const Orders = loadOrdersService();
  const orders = new Map<string, Order>([['1001', { id: '1001', item: 'coffee beans', quantity: 3 }]]);
  let next = 1002;

  const server = new Server();
  server.addService(Orders.service, {
    GetOrder(call: ServerUnaryCall<{ id: string }, Order>, callback: sendUnaryData<Order>) {
      const order = orders.get(call.request.id);
      if (!order) return callback({ code: status.NOT_FOUND, details: `no order ${call.request.id}` });
      callback(null, { ...order, caller: callerOf(call.metadata) });
    },
    ListOrders(call: ServerUnaryCall<object, { orders: Order[] }>, callback: sendUnaryData<{ orders: Order[] }>) {
      const caller = callerOf(call.metadata);
      callback(null, { orders: [...orders.values()].map((o) => ({ ...o, caller })) });
    },
    CreateOrder(call: ServerUnaryCall<{ item: string; quantity: number }, Order>, callback: sendUnaryData<Order>) {
      const order: Order = { id: String(next++), item: call.request.item, quantity: call.request.quantity };
      orders.set(order.id, order);
      callback(null, { ...order, caller: callerOf(call.metadata) });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port };
}

