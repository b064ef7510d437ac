/**
 * Which app registration's own signing keys (claims mapping) verify the tokens of an audience:
 * `entra.signingKeysAppId` names one client id for every audience, or one per audience. Pure.
 */
import type { EntraConfig } from '../../config/schema.js';

type AppKeysConfig = Pick<EntraConfig, 'signingKeysAppId' | 'audiences'>;

/** The client id whose keys sign tokens for `audience`; undefined: the tenant's common keys. */
export function signingKeysAppIdFor(config: AppKeysConfig, audience: string | undefined): string | undefined {
  const setting = config.signingKeysAppId;
  if (setting === undefined || typeof setting === 'string') return setting;
  return audience === undefined ? undefined : setting[audience];
}

/** Every key owner the configured audiences need: app ids, and undefined for the common keys. */
export function signingKeyOwners(config: AppKeysConfig): (string | undefined)[] {
  return [...new Set(config.audiences.map((audience) => signingKeysAppIdFor(config, audience)))];
}
