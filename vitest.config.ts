import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // RSA key pairs made once per run and shared by every test file (test/fixtures/keys.ts).
    globalSetup: ['test/support/key-pairs.global.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests start real servers on loopback; two cores do not gain from more workers.
    maxWorkers: 2,
    // Each worker keeps its module cache between test files: importing grpc-js, the OpenTelemetry SDK
    // and the protos once per worker instead of once per file more than halves the suite's CPU time.
    // Safe because the project keeps no module-level mutable state, and tests restore what they
    // change (fake timers, stubbed environment variables) in afterEach.
    isolate: false,
  },
});
