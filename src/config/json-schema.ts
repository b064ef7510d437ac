/**
 * The published JSON Schema of the configuration file (`schema/entra-authz.schema.json`), for
 * editor validation and completion. Generated from the zod schema, so it cannot drift from what
 * the server accepts; `test/config/json-schema.test.ts` fails when the committed file is stale,
 * and `npx tsx scripts/generate-config-schema.ts` rewrites it.
 *
 * What it cannot say (checked at load only): cross-field rules (conflicting requirements,
 * duplicate names, unreachable rules, tenants outside `entra.tenants`) and `${ENV}` substitution —
 * every string value with a pattern also accepts a value containing `${`, since the editor cannot
 * know the variable's value.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

export const SCHEMA_ID = 'https://github.com/entra-authz/entra-authz/schema/entra-authz.schema.json';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A string containing `${`: a placeholder the loader substitutes. */
const PLACEHOLDER: Json = { type: 'string', pattern: '\\$\\{' };

function allowPlaceholders(node: Json): Json {
  if (Array.isArray(node)) return node.map(allowPlaceholders);
  if (node === null || typeof node !== 'object') return node;
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(node)) out[k] = allowPlaceholders(v);
  const constrained = 'pattern' in out || 'format' in out || 'enum' in out;
  if (out['type'] === 'string' && constrained) {
    const { description, default: dflt, ...rest } = out;
    const wrapped: { [k: string]: Json } = { anyOf: [rest, PLACEHOLDER] };
    if (description !== undefined) wrapped['description'] = description;
    if (dflt !== undefined) wrapped['default'] = dflt;
    return wrapped;
  }
  return out;
}

/** The JSON Schema (draft 2020-12) of the configuration file as a user writes it. */
export function configJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
  const withPlaceholders = allowPlaceholders(generated) as { [k: string]: Json };
  const { $schema, ...rest } = withPlaceholders;
  return {
    $schema: $schema ?? 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    title: 'entra-authz configuration',
    description: 'Configuration file of entra-authz, the Envoy ext_authz server for Microsoft Entra ID tokens. See docs/configuration.md.',
    ...rest,
  };
}

/** The file's text: stable formatting, trailing newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
