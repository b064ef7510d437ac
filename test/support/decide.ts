import type { CheckOutcome, PhaseTracer } from '../../src/core/outcome.js';
import { normalizeCheckRequest } from '../../src/core/request.js';
import type { Decider } from '../../src/engine/decide.js';

/** What an adapter does before deciding: normalise the CheckRequest, then decide (or refuse it). */
export function decideCheckRequest(decider: Decider, raw: unknown, tracer?: PhaseTracer): Promise<CheckOutcome> {
  const normalized = normalizeCheckRequest(raw, decider.limits);
  return Promise.resolve(normalized.ok ? decider.decide(normalized.request, tracer) : decider.unreadable(normalized.detail));
}
