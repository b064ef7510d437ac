#!/usr/bin/env node
// The process entry: runs the command line and sets the exit status. Everything else lives in
// cli/main.ts, which tests call in-process.
import { main } from './cli/main.js';

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
