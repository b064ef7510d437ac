import { readFile } from 'node:fs/promises';
import { ConfigError, parseConfig } from '../config/load.js';
import { createConfigWatcher } from '../config/reload.js';
import { startApp } from '../server/app.js';
import { createLogger } from '../server/logger.js';
import { untilSignalled } from './lifecycle.js';

export async function runServe(configPath: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (err) {
    throw new ConfigError(configPath, [{ path: '(file)', message: (err as Error).message }]);
  }
  const config = parseConfig(text, configPath);
  const log = createLogger();
  const app = await startApp(config, { log });
  // Hot reload on file change and SIGHUP: validated first, an invalid file keeps the running config.
  const watcher = createConfigWatcher({
    path: configPath,
    initialText: text,
    onChange: (next) => app.reload(next),
    onError: (err, trigger) =>
      log.error({ trigger, problems: err instanceof ConfigError ? err.problems : undefined, err: err.message }, 'configuration reload failed; keeping the running configuration'),
  });
  return untilSignalled(log, () => {
    watcher.close();
    return app.close();
  });
}
