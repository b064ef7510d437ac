import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, configJsonSchemaText } from '../../src/config/json-schema.js';

describe('published JSON Schema', () => {
  it('schema/entra-authz.schema.json is up to date (regenerate: npx tsx scripts/generate-config-schema.ts)', () => {
    const committed = readFileSync(new URL('../../schema/entra-authz.schema.json', import.meta.url), 'utf8');
    expect(committed).toBe(configJsonSchemaText());
  });

  it('describes the rules, refuses unknown keys and lets ${ENV} placeholders through', () => {
    // A JSON Schema document, walked loosely.
    type Node = { properties: Record<string, Node>; items: Node; additionalProperties: unknown; required: string[]; anyOf: unknown[] };
    const schema = configJsonSchema() as unknown as Node;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(expect.arrayContaining(['entra', 'rules']));
    const rule = schema.properties['rules']!.items;
    expect(Object.keys(rule.properties)).toEqual(['name', 'description', 'match', 'allowAnonymous', 'require', 'dryRun']);
    expect(rule.additionalProperties).toBe(false);
    expect(Object.keys(rule.properties['match']!.properties)).toEqual(['contextExtensions', 'hosts', 'paths', 'methods']);
    const tenant = schema.properties['entra']!.properties['tenants']!.items;
    expect(tenant.anyOf).toContainEqual({ type: 'string', pattern: '\\$\\{' });
    expect(schema.properties['dryRun']).toMatchObject({ type: 'boolean', default: false });
  });
});
