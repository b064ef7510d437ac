import type { Metadata, MetadataValue, ResponsePlan } from '../core/response.js';

/**
 * ResponsePlan → envoy.service.auth.v3.CheckResponse as @grpc/proto-loader expects it
 * (keepCase field names). The only place that knows the protobuf shape of a response.
 */

// protobufjs defines google.protobuf.Struct/Value itself, with camelCase field names, whatever
// keepCase says for Envoy's own messages.
type StructValue = { stringValue: string } | { numberValue: number } | { boolValue: boolean } | { listValue: { values: StructValue[] } };

function structValue(v: MetadataValue): StructValue {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  return { listValue: { values: v.map((s) => ({ stringValue: s })) } };
}

export function toStruct(metadata: Metadata): { fields: Record<string, StructValue> } {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(metadata)) fields[k] = structValue(v);
  return { fields };
}

// Always explicit: Envoy releases disagreed on the default append behaviour (see docs/envoy.md).
const headerOption = ([key, value]: readonly [string, string]) => ({
  header: { key, value },
  append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
});

export type CheckResponseMessage = Record<string, unknown>;

/** Builds the CheckResponse for an allow or a deny (an `unavailable` plan is an RPC error instead). */
export function toCheckResponse(plan: Exclude<ResponsePlan, { kind: 'unavailable' }>): CheckResponseMessage {
  if (plan.kind === 'allow') {
    return {
      status: { code: 0, message: '' },
      ok_response: {
        headers: plan.setHeaders.map(headerOption),
        headers_to_remove: [...plan.removeHeaders],
      },
      dynamic_metadata: toStruct(plan.metadata),
    };
  }
  return {
    status: { code: plan.grpcCode, message: String(plan.metadata['reason'] ?? '') },
    denied_response: {
      status: { code: plan.httpStatus },
      headers: plan.headers.map(headerOption),
      body: plan.body,
    },
    dynamic_metadata: toStruct(plan.metadata),
  };
}
