import { GrpcCode, REASONS, RPC_FAILURE_REASONS, type ReasonCode } from './reasons.js';

const GRPC_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(GrpcCode).map(([name, code]) => [code, name]));

/** `PERMISSION_DENIED` for 7: the name of a gRPC status code the reason table uses. */
export function grpcCodeName(code: GrpcCode): string {
  return GRPC_NAMES[code] ?? String(code);
}

/** The reason-code table as Markdown rows, for docs/reason-codes.md (kept in sync by a test). */
export function reasonTableMarkdown(): string {
  const rows = (Object.keys(REASONS) as ReasonCode[]).map((code) => {
    const r = REASONS[code];
    const challenge = r.challenge ? (r.bearerError ? `\`Bearer …, error="${r.bearerError}"\`` : '`Bearer realm=…, authorization_uri=…`') : '—';
    const status = RPC_FAILURE_REASONS.has(code) ? 'RPC fails: UNAVAILABLE (14)' : `${r.httpStatus}`;
    return `| \`${code}\` | ${status} | ${grpcCodeName(r.grpcCode)} (${r.grpcCode}) | ${challenge} | ${r.message} |`;
  });
  return ['| Code | HTTP status | CheckResponse gRPC status | WWW-Authenticate | Message in the body |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
