/**
 * Rewrites schema/entra-authz.schema.json from the zod schema (src/config/json-schema.ts).
 * Run after changing src/config/schema.ts: `npx tsx scripts/generate-config-schema.ts`.
 * test/config/json-schema.test.ts fails while the file is out of date.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchemaText } from '../src/config/json-schema.js';

const target = fileURLToPath(new URL('../schema/entra-authz.schema.json', import.meta.url));
mkdirSync(fileURLToPath(new URL('../schema/', import.meta.url)), { recursive: true });
writeFileSync(target, configJsonSchemaText());
console.log(`wrote ${target}`);
