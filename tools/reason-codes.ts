// Rewrites the generated table in docs/reason-codes.md from src/core/reasons.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import { reasonTableMarkdown } from '../src/core/reason-table.js';

const file = new URL('../docs/reason-codes.md', import.meta.url);
const text = readFileSync(file, 'utf8');
const next = text.replace(
  /(<!-- reason-table:start -->)[\s\S]*?(<!-- reason-table:end -->)/,
  (_all, start: string, end: string) => `${start}\n${reasonTableMarkdown()}\n${end}`,
);
writeFileSync(file, next);
