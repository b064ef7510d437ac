/**
 * Results that are there at once or later. The check path answers a cached caller in the tick its
 * request arrived: a promise and an await per step would each defer the answer by a microtask,
 * which grpc-js pays for in throughput.
 */
export type MaybePromise<T> = T | Promise<T>;

/** Hands `value` to `use` at once when it is there, else when its promise fulfils; a rejection goes to `failed`. */
export function whenReady<T>(value: MaybePromise<T>, use: (value: T) => void, failed: (err: unknown) => void): void {
  if (value instanceof Promise) value.then(use, failed);
  else use(value);
}
