import { randomBytes } from 'node:crypto';
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

// ---------------------------------------------------------------------------------------------
// Encoded answers, built once and reused
// ---------------------------------------------------------------------------------------------

/** An allow or deny plan (an `unavailable` plan is an RPC error instead). */
export type AnswerPlan = Exclude<ResponsePlan, { kind: 'unavailable' }>;

export interface CheckResponseEncoder {
  /**
   * The encoded CheckResponse for `plan`. Plans that differ only in their decision id — the same
   * caller, rule, outcome and peer under the same configuration — share one encoding, with only
   * the id written in.
   */
  encode(plan: AnswerPlan): Buffer;
}

/** An encoded response with the byte offsets where the decision id goes. */
interface Template {
  readonly bytes: Buffer;
  readonly idLength: number;
  readonly offsets: readonly number[];
}

/** First sight of a plan: remembered, not yet worth a template (a token verified once is never seen again). */
const SEEN = 'seen';
/** A template failed its self-check: always encode afresh. */
const UNCACHEABLE = 'uncacheable';
type Slot = Template | typeof SEEN | typeof UNCACHEABLE;

/**
 * Decision ids that can be written into encoded bytes as they are: long enough never to occur by
 * chance elsewhere in a response, and ASCII that neither JSON (the deny body) nor protobuf escape.
 */
const PATCHABLE_ID = /^[A-Za-z0-9._:~-]{16,128}$/;
/** Distinct plans remembered; beyond that the memory starts over (bounded, and cheap to rebuild). */
const DEFAULT_MAX_ENTRIES = 4096;

function placeholder(length: number): string {
  return randomBytes(length).toString('base64url').slice(0, length);
}

function offsetsOf(bytes: Buffer, needle: string): number[] {
  const found: number[] = [];
  for (let at = bytes.indexOf(needle, 0, 'latin1'); at !== -1; at = bytes.indexOf(needle, at + needle.length, 'latin1')) found.push(at);
  return found;
}

function patch(template: Template, id: string): Buffer {
  const out = Buffer.allocUnsafe(template.bytes.length);
  template.bytes.copy(out);
  for (const at of template.offsets) out.write(id, at, 'latin1');
  return out;
}

/**
 * Encodes answers with `serialize` (the Check method's response serializer), remembering up to
 * `maxEntries` plans by their name (`sameAs`, given by the planner) or else by their whole content
 * with the decision id blanked out. Two plans share an encoding only when everything but the id is
 * equal, so one caller's headers can never reach another caller's answer.
 *
 * A template is trusted only after a self-check: written with a second id it must equal a fresh
 * encoding with that id. Anything else — an id that is short or not plain ASCII, a template that
 * fails the check — is encoded afresh.
 */
export function createCheckResponseEncoder(serialize: (message: CheckResponseMessage) => Buffer, maxEntries = DEFAULT_MAX_ENTRIES): CheckResponseEncoder {
  const slots = new Map<string, Slot>();
  const encodeFresh = (plan: AnswerPlan): Buffer => serialize(toCheckResponse(plan));
  /** The plan as JSON; every occurrence of the id is the decision id (a patchable id needs no escaping). */
  const withId = (json: string, id: string, next: string): AnswerPlan => JSON.parse(json.replaceAll(id, next)) as AnswerPlan;

  const buildTemplate = (json: string, id: string): Template | undefined => {
    const first = placeholder(id.length);
    const bytes = encodeFresh(withId(json, id, first));
    const template = { bytes, idLength: id.length, offsets: offsetsOf(bytes, first) };
    const second = placeholder(id.length);
    return patch(template, second).equals(encodeFresh(withId(json, id, second))) ? template : undefined;
  };

  return {
    encode(plan) {
      const id = plan.metadata['decision_id'];
      if (typeof id !== 'string' || !PATCHABLE_ID.test(id)) return encodeFresh(plan);
      // A named plan needs no serialisation to be recognised (see `sameAs` in core/response.ts).
      let json: string | undefined;
      const key = plan.sameAs ?? (json = JSON.stringify(plan)).replaceAll(id, '\u0000');
      const slot = slots.get(key);
      if (typeof slot === 'object' && slot.idLength === id.length) return patch(slot, id);
      if (slot === undefined) {
        if (slots.size >= maxEntries) slots.clear();
        slots.set(key, SEEN);
      } else if (slot !== UNCACHEABLE) {
        // Seen before (or templated for ids of another length): worth a template now.
        const template = buildTemplate(json ?? JSON.stringify(plan), id);
        slots.set(key, template ?? UNCACHEABLE);
        if (template !== undefined) return patch(template, id);
      }
      return encodeFresh(plan);
    },
  };
}
