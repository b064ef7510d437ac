import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

/**
 * Generates a few RSA-2048 key pairs once per test run and hands them to every test file (see
 * test/fixtures/keys.ts): RSA generation is the slowest step of most emulator and verifier tests.
 */
export const SHARED_KEY_PAIRS = 8;

export interface SharedKeyPairPem {
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    sharedKeyPairs: SharedKeyPairPem[];
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const generate = promisify(generateKeyPair);
  const pairs = await Promise.all(
    Array.from({ length: SHARED_KEY_PAIRS }, () =>
      generate('rsa', {
        modulusLength: 2048,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      }),
    ),
  );
  project.provide(
    'sharedKeyPairs',
    pairs.map(({ privateKey, publicKey }) => ({ privateKeyPem: privateKey, publicKeyPem: publicKey })),
  );
}
