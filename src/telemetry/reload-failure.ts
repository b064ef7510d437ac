import { ConfigError } from '../config/errors.js';
import type { ReloadTrigger } from '../config/reload.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** A config watcher's `onError`: counts the failed reload and logs why; the running configuration stays. */
export function reportReloadFailure(metrics: Pick<Metrics, 'configReload'>, log: Logger): (err: Error, trigger: ReloadTrigger) => void {
  return (err, trigger) => {
    metrics.configReload('failure');
    log.error({ trigger, problems: err instanceof ConfigError ? err.problems : undefined, err: err.message }, 'configuration reload failed; keeping the running configuration');
  };
}
