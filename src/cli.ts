#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from './config/load.js';

const USAGE = `entra-authz — Envoy ext_authz server for Microsoft Entra ID tokens

Usage:
  entra-authz serve --config FILE      run the authorization server
  entra-authz validate --config FILE   check a configuration file and exit
  entra-authz dev [--listen H:P] [--admin-listen H:P] [--emulator-listen H:P]
                                       server + built-in Entra emulator on loopback (try it out)
  entra-authz emulator [--listen H:P] [--public-url URL]
                                       the Entra emulator alone
  entra-authz check [--server H:P] [--token JWT] [--path P] [--method M] [--host H]
                    [--context k=v ...] [--header k=v ...]
                                       send one Check to a running server and print the answer
  entra-authz explain --config FILE (--token JWT | --request CHECKREQUEST.json) [--at TIME] [--jwks FILE] [--json]
                                       why a request is allowed or denied: rule, token, each requirement
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } } });
      if (!values.config) return usage('serve needs --config FILE');
      const { runServe } = await import('./cli/serve.js');
      return runServe(values.config);
    }
    case 'validate': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } } });
      if (!values.config) return usage('validate needs --config FILE');
      await loadConfigFile(values.config);
      console.log(`${values.config}: valid`);
      return 0;
    }
    case 'dev': {
      const { values } = parseArgs({
        args: rest,
        options: { listen: { type: 'string' }, 'emulator-listen': { type: 'string' }, 'admin-listen': { type: 'string' } },
      });
      const { runDev } = await import('./cli/dev.js');
      return runDev({ listen: values.listen, emulatorListen: values['emulator-listen'], adminListen: values['admin-listen'] });
    }
    case 'emulator': {
      const { values } = parseArgs({ args: rest, options: { listen: { type: 'string' }, 'public-url': { type: 'string' } } });
      const { runEmulator } = await import('./cli/dev.js');
      return runEmulator({ listen: values.listen ?? '127.0.0.1:9400', publicUrl: values['public-url'] });
    }
    case 'explain': {
      const { runExplain } = await import('./cli/explain.js');
      return runExplain(rest);
    }
    case 'check': {
      const { runCheck } = await import('./cli/check.js');
      return runCheck(rest);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      return usage(`unknown command ${JSON.stringify(command)}`);
  }
}

function usage(problem: string): number {
  console.error(`${problem}\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) console.error(err.message);
    else console.error(err instanceof Error ? err.message : err);
    process.exitCode = err instanceof ConfigError ? 1 : 2;
  },
);
