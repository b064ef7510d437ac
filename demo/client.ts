import { demoSettings } from './demo-values.js';
import { runDemo } from './scenario.js';

// Entry point of the compose `demo-client` service (docs/deployment.md explains the output).
const settings = demoSettings();
console.log(`demo client: calling ${settings.envoyAddress} with tokens from ${settings.tokenEndpoint}`);
runDemo(settings).then(
  (results) => {
    const failed = results.filter((r) => !r.ok).length;
    console.log(`\n${results.length - failed} passed, ${failed} failed`);
    process.exitCode = failed === 0 ? 0 : 1;
  },
  (err: unknown) => {
    console.error(`demo client failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
