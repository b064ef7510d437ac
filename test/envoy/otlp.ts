import { createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import protobuf from 'protobufjs/minimal.js';
import { grpcFrame } from '../support/echo.js';
import { listenOnLoopback } from '../support/loopback.js';

/** The fields of an OTLP span the tests look at (ids as lower-case hex). */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly service: string;
}

export interface OtlpReceiver {
  readonly port: number;
  readonly spans: readonly ReceivedSpan[];
  close(): Promise<void>;
}

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

/** Length-delimited fields of one message, by field number; other wire types are skipped. */
function fields(bytes: Uint8Array): Map<number, Uint8Array[]> {
  const reader = protobuf.Reader.create(bytes);
  const out = new Map<number, Uint8Array[]>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 2) out.set(field, [...(out.get(field) ?? []), reader.bytes()]);
    else reader.skipType(wire);
  }
  return out;
}
const first = (m: Map<number, Uint8Array[]>, field: number): Uint8Array => m.get(field)?.[0] ?? new Uint8Array();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

/** service.name from a Resource's attributes (KeyValue{1: key, 2: AnyValue{1: string_value}}). */
function serviceName(resource: Uint8Array): string {
  for (const kv of fields(resource).get(1) ?? []) {
    const pair = fields(kv);
    if (text(first(pair, 1)) === 'service.name') return text(first(fields(first(pair, 2)), 1));
  }
  return '';
}

/**
 * ExportTraceServiceRequest → spans, read with protobufjs's wire reader (field numbers from
 * opentelemetry-proto: resource_spans 1 → resource 1, scope_spans 2 → spans 2 → trace_id 1,
 * span_id 2, parent_span_id 4, name 5).
 */
export function decodeExportRequest(body: Uint8Array): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of fields(body).get(1) ?? []) {
    const resourceSpans = fields(rs);
    const service = serviceName(first(resourceSpans, 1));
    for (const ss of resourceSpans.get(2) ?? []) {
      for (const span of fields(ss).get(2) ?? []) {
        const f = fields(span);
        spans.push({ traceId: hex(first(f, 1)), spanId: hex(first(f, 2)), parentSpanId: hex(first(f, 4)), name: text(first(f, 5)), service });
      }
    }
  }
  return spans;
}

/** An OTLP/gRPC trace receiver on loopback (h2c), as a collector would be. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const server = createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const chunks: Buffer[] = [];
    stream.on('error', () => undefined);
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      if (headers[':path'] === EXPORT_PATH) {
        const body = Buffer.concat(chunks);
        if (body.length >= 5) spans.push(...decodeExportRequest(body.subarray(5)));
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': headers[':path'] === EXPORT_PATH ? '0' : '12' }));
      stream.end(grpcFrame(Buffer.alloc(0)));
    });
  });
  return {
    port: await listenOnLoopback(server),
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
