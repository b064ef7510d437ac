/**
 * Checks that each carry a different request body, which h2load cannot send (it repeats one
 * body): a plain node:http2 client speaking gRPC framing, with many checks in flight, that makes
 * each body only when a stream frees up (so 100k tokens never sit in memory at once) and checks
 * every answer.
 */
import { connect, constants } from 'node:http2';
import { CHECK_PATH } from './h2load.js';
import { loadAuthorizationService } from '../src/server/protos.js';

type CheckAnswer = { status?: { code?: number }; ok_response?: unknown };

/**
 * Sends `count` checks to `address`, the i-th with the gRPC-framed body `frame(i)`, `inFlight` at
 * a time; rejects on the first answer that is not an allow.
 */
export async function sendDistinctAllows(address: string, count: number, frame: (i: number) => Buffer | Promise<Buffer>, inFlight: number): Promise<void> {
  const decode = loadAuthorizationService()['Check']!.responseDeserialize;
  const session = connect(`http://${address}`);
  session.on('error', () => {}); // each stream reports its own failure

  const checkOne = (i: number, body: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: CHECK_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const chunks: Buffer[] = [];
      let grpcStatus: string | undefined;
      stream.on('response', (headers) => (grpcStatus = headers['grpc-status'] as string | undefined));
      stream.on('trailers', (trailers) => (grpcStatus = trailers['grpc-status'] as string | undefined));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('end', () => {
        const body = Buffer.concat(chunks);
        const answer = grpcStatus === '0' && body.length > 5 ? (decode(body.subarray(5)) as CheckAnswer) : undefined;
        if (answer !== undefined && (answer.status?.code ?? 0) === 0 && answer.ok_response !== undefined) resolve();
        else reject(new Error(`check ${i}: expected an allow, got grpc-status ${String(grpcStatus)} ${JSON.stringify(answer ?? {}).slice(0, 300)}`));
      });
      stream.end(body);
    });

  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await checkOne(i, await frame(i));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
  } finally {
    session.close();
  }
}
