/**
 * Checks that each carry a different request body, which h2load cannot send (it repeats one
 * body): a plain node:http2 client speaking gRPC framing, with many checks in flight, that makes
 * each body only when a stream frees up (so 100k tokens never sit in memory at once) and checks
 * every answer.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { CHECK_PATH } from './h2load.js';
import { loadAuthorizationService } from '../src/server/protos.js';

type CheckAnswer = { status?: { code?: number }; ok_response?: unknown };

/** Longest one check may take before the run counts it as hung. */
const CHECK_TIMEOUT_MS = 30_000;

/**
 * Sends `count` checks to `address`, the i-th with the gRPC-framed body `frame(i)`, `inFlight` at
 * a time; rejects on the first answer that is not an allow, on a stream that closes without an
 * answer or takes longer than 30 s, and when `signal` aborts.
 */
export async function sendDistinctAllows(
  address: string,
  count: number,
  frame: (i: number) => Buffer | Promise<Buffer>,
  inFlight: number,
  signal?: AbortSignal,
): Promise<void> {
  const decode = loadAuthorizationService()['Check']!.responseDeserialize;
  const session = connect(`http://${address}`);
  session.on('error', () => {}); // each stream reports its own failure
  const abort = (): void => void session.destroy();
  signal?.addEventListener('abort', abort, { once: true });

  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      signal?.throwIfAborted();
      const i = next++;
      await checkOne(session, i, await frame(i), decode);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
  } finally {
    signal?.removeEventListener('abort', abort);
    session.close();
  }
}

/** One check on `session`; settles exactly once, whatever the stream does. */
function checkOne(session: ClientHttp2Session, i: number, body: Buffer, decode: (b: Buffer) => unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: CHECK_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const fail = (why: string): void => reject(new Error(`check ${i}: ${why}`));
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    stream.setTimeout(CHECK_TIMEOUT_MS, () => {
      fail(`no answer within ${CHECK_TIMEOUT_MS / 1000} s`);
      stream.close(constants.NGHTTP2_CANCEL);
    });
    stream.on('response', (headers) => (grpcStatus = headers['grpc-status'] as string | undefined));
    stream.on('trailers', (trailers) => (grpcStatus = trailers['grpc-status'] as string | undefined));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', (err) => fail(err.message));
    stream.on('end', () => {
      const answer = Buffer.concat(chunks);
      const decoded = grpcStatus === '0' && answer.length > 5 ? (decode(answer.subarray(5)) as CheckAnswer) : undefined;
      if (decoded !== undefined && (decoded.status?.code ?? 0) === 0 && decoded.ok_response !== undefined) resolve();
      else fail(`expected an allow, got grpc-status ${String(grpcStatus)} ${JSON.stringify(decoded ?? {}).slice(0, 300)}`);
    });
    // A reset or a closed session may end a stream with neither 'end' nor 'error'.
    stream.on('close', () => fail(`stream closed without an answer (HTTP/2 code ${stream.rstCode})`));
    stream.end(body);
  });
}
