import { afterEach, describe, expect, it } from 'vitest';
import { DEMO } from '../../src/dev/emulator.js';
import { allowance, denial, startHarness, type Harness } from '../support/harness.js';

const HOUR = 3600;
const { reader } = DEMO.clients;

describe('token lifetime and continuous access evaluation (entra.cae)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const start = async (cae: boolean): Promise<Harness> => {
    h = await startHarness({ entra: { cae }, rules: [{ name: 'any', require: {} }] });
    await h.waitServing();
    return h;
  };
  const token = (hh: Harness, lifetime: number, claims: Record<string, unknown> = {}) =>
    hh.emulator.issueToken({ appId: reader.clientId, scopes: ['Orders.Read'], expiresInSeconds: lifetime, claims });

  it('accepts a 24-hour token and refuses a longer one with 401 token_lifetime_too_long when CAE is off', async () => {
    const hh = await start(false);
    allowance(await hh.check({ token: await token(hh, 24 * HOUR) }));
    const d = denial(await hh.check({ token: await token(hh, 28 * HOUR, { xms_cc: ['cp1'] }) }));
    expect(d).toMatchObject({ reason: 'token_lifetime_too_long', grpcCode: 16 });
    expect(d.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('accepts a 28-hour CAE token from a cp1 client when CAE is on, and nothing longer', async () => {
    const hh = await start(true);
    allowance(await hh.check({ token: await token(hh, 28 * HOUR, { xms_cc: ['cp1'] }) }));
    expect(denial(await hh.check({ token: await token(hh, 28 * HOUR + 1, { xms_cc: ['cp1'] }) })).reason).toBe('token_lifetime_too_long');
  });

  it('still refuses a long-lived token from a client that is not CAE-capable when CAE is on', async () => {
    const hh = await start(true);
    expect(denial(await hh.check({ token: await token(hh, 28 * HOUR) })).reason).toBe('token_lifetime_too_long');
  });
});
