#!/usr/bin/env node
// The `entra-authz` command. Runs the compiled CLI (dist/cli.js, from `npm run build`); in a
// checkout that has not been built, runs the TypeScript sources through tsx (a dev dependency),
// so `npx entra-authz` works right after `npm ci`. Production images always carry dist/.
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

const fail = (message) => {
  process.stderr.write(`entra-authz: ${message}\n`);
  process.exit(1);
};

const compiled = new URL('../dist/cli.js', import.meta.url);
const sources = new URL('../src/cli.ts', import.meta.url);

if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    fail(
      'dist/cli.js is missing and tsx (a dev dependency) is not installed to run the sources.\n' +
        'Build the CLI with `npm ci && npm run build`, or install the dev dependencies with `npm ci`.',
    );
  }
  if (!existsSync(sources)) fail('neither dist/cli.js nor src/cli.ts exists: reinstall the package or run `npm run build`.');
  register();
  await import(sources.href);
}
