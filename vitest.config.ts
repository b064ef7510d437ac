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
  },
});
