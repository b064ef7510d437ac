import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../config/errors.js';
import { closest } from '../config/suggest.js';
import { packageVersion } from '../telemetry/package-version.js';

/** A command-line mistake: printed with a pointer to the command's help, exit status 2. */
class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose help to point at; the overview when absent. */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** Where the CLI writes its own text (help, version, usage and configuration errors). */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

interface Command {
  /** One line for the overview. */
  readonly summary: string;
  /** Full help: usage, options, examples; a function where the text lives with a lazily loaded module. */
  readonly help: string | (() => Promise<string>);
  run(args: string[], io: CliIo): Promise<number>;
}

/** Parses a command's options, turning node:util's errors into usage errors. */
function options<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], spec: T) {
  return parseArgs({ args, options: spec, allowPositionals: false }).values;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'run the authorization server',
    help: `Usage: entra-authz serve --config FILE

Runs the ext_authz gRPC server (and the admin endpoints) with the configuration in FILE.
SIGHUP or a change of FILE reloads it; SIGTERM/SIGINT drain in-flight checks and exit 0.

Options:
  -c, --config FILE   the configuration file (YAML; docs/configuration.md)
  -h, --help          show this help

Environment: LOG_LEVEL (info), OTEL_* for tracing (docs/observability.md), and any \${NAME}
the configuration file uses.

Example:
  entra-authz serve --config /etc/entra-authz/config.yaml`,
    async run(args) {
      const { config } = options(args, { config: { type: 'string', short: 'c' } });
      if (!config) throw new UsageError('needs --config FILE', 'serve');
      const { runServe } = await import('./serve.js');
      return runServe(config);
    },
  },
  validate: {
    summary: 'check a configuration file and the files it names, then exit',
    help: `Usage: entra-authz validate --config FILE

Checks FILE as serve would load it, without starting anything: YAML syntax (with line and
column), every option (unknown keys get a "did you mean"), \${NAME} substitutions, the rules,
and that the certificate, key and CA files it names exist and are readable.
Every problem is printed with its path. Exit status: 0 valid, 1 invalid, 2 usage error.

Options:
  -c, --config FILE   the configuration file
  -h, --help          show this help

Example:
  entra-authz validate --config entra-authz.yaml`,
    async run(args, io) {
      const { config: file } = options(args, { config: { type: 'string', short: 'c' } });
      if (!file) throw new UsageError('needs --config FILE', 'validate');
      const [{ loadConfigFile }, { fileProblems }] = await Promise.all([import('../config/load.js'), import('../config/files.js')]);
      const problems = await fileProblems(await loadConfigFile(file));
      if (problems.length > 0) throw new ConfigError(file, problems);
      io.out(`${file}: valid\n`);
      return 0;
    },
  },
  dev: {
    summary: 'the server and a local Entra ID emulator on loopback, to try it out',
    help: `Usage: entra-authz dev [--listen H:P] [--http-listen H:P] [--admin-listen H:P] [--emulator-listen H:P]

Starts the server with embedded defaults and an Entra ID emulator (a demo tenant, API and
clients), prints copy-paste examples (gRPC Check and HTTP forward auth), and writes audit
records to stdout. Not for production.

Options:
  --listen H:P            ext_authz gRPC address (127.0.0.1:9001)
  --http-listen H:P       HTTP authorization address for forward-auth proxies (127.0.0.1:9002)
  --admin-listen H:P      /healthz /readyz /metrics (127.0.0.1:9090)
  --emulator-listen H:P   the Entra emulator (127.0.0.1:9400)
  -h, --help              show this help

Example:
  entra-authz dev --http-listen 127.0.0.1:9102`,
    async run(args) {
      const values = options(args, {
        listen: { type: 'string' },
        'http-listen': { type: 'string' },
        'emulator-listen': { type: 'string' },
        'admin-listen': { type: 'string' },
      });
      const { runDev } = await import('./dev.js');
      return runDev({ listen: values.listen, httpListen: values['http-listen'], emulatorListen: values['emulator-listen'], adminListen: values['admin-listen'] });
    },
  },
  emulator: {
    summary: 'the Entra ID emulator alone (compose demo, manual testing)',
    help: `Usage: entra-authz emulator [--listen H:P] [--public-url URL]

Serves Entra-shaped OpenID metadata, JWKS and a client-credentials token endpoint for the demo
tenant. Not for production.

Options:
  --listen H:P        address to listen on (127.0.0.1:9400)
  --public-url URL    the URL clients reach it by, used as the issuer (http://<listen>)
  -h, --help          show this help

Example:
  entra-authz emulator --listen 0.0.0.0:9400 --public-url http://entra:9400`,
    async run(args) {
      const values = options(args, { listen: { type: 'string' }, 'public-url': { type: 'string' } });
      const { runEmulator } = await import('./dev.js');
      return runEmulator({ listen: values.listen ?? '127.0.0.1:9400', publicUrl: values['public-url'] });
    },
  },
  check: {
    summary: 'send one Check to a running server, as Envoy would, and print the answer',
    help: `Usage: entra-authz check [--server H:P] [--token JWT] [--path P] [--method M] [--host H]
                         [--context k=v ...] [--header k=v ...]

Plays Envoy: sends one CheckRequest over plaintext gRPC and prints the decision as JSON.
Exit status: 0 allowed, 1 denied, 2 the Check itself failed.

Options:
  --server H:P     the entra-authz gRPC address (127.0.0.1:9001)
  --token JWT      sent as "authorization: Bearer JWT"
  --path P         request path (/)
  --method M       request method (GET)
  --host H         request host (api.example.com)
  --context k=v    a context extension, as Envoy's per-route settings send (repeatable)
  --header k=v     another request header (repeatable)
  -h, --help       show this help

Example:
  entra-authz check --token "$TOKEN" --path /orders --context policy=orders-write`,
    async run(args) {
      const { runCheck } = await import('./check.js');
      return runCheck(args);
    },
  },
  explain: {
    summary: 'why a request is allowed or denied: the rule, the token, each requirement',
    help: async () => (await import('./explain.js')).EXPLAIN_USAGE.trimEnd(),
    async run(args) {
      const { runExplain } = await import('./explain.js');
      return runExplain(args);
    },
  },
};

const NAMES = Object.keys(COMMANDS);

function overview(): string {
  const width = Math.max(...NAMES.map((n) => n.length));
  return `entra-authz ${packageVersion()} — Envoy ext_authz server for Microsoft Entra ID tokens

Usage: entra-authz <command> [options]

Commands:
${NAMES.map((n) => `  ${n.padEnd(width)}   ${COMMANDS[n]?.summary}`).join('\n')}
  ${'help'.padEnd(width)}   show this overview, or a command's help: entra-authz help <command>

Options: -h, --help (also after any command), -v, --version
Docs: README.md and docs/ (configuration, rules, mTLS, Envoy, deployment, observability)`;
}

const helpOf = async (command: Command): Promise<string> => (typeof command.help === 'string' ? command.help : command.help());

function unknownCommand(name: string): UsageError {
  const suggestion = closest(name, [...NAMES, 'help']);
  return new UsageError(`unknown command "${name}"${suggestion !== undefined ? ` — did you mean "${suggestion}"?` : ''}`);
}

/** Options a command's help names, for "did you mean" on an unknown one. */
const optionsIn = (help: string): string[] => [...new Set(help.match(/--[a-z][a-z-]*/g) ?? [])];

/**
 * Runs the command line `argv` (without node and the script) and resolves with the exit status:
 * usage mistakes 2, configuration errors 1, anything unexpected 2. Never rejects.
 */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      const where = err.command !== undefined ? `entra-authz ${err.command}` : 'entra-authz';
      io.err(`${where}: ${err.message}\nRun "entra-authz ${err.command !== undefined ? `${err.command} --help` : 'help'}" for usage.\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return 1;
    }
    io.err(`entra-authz: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
}

async function dispatch(argv: string[], io: CliIo): Promise<number> {
  const print = (text: string): number => {
    io.out(`${text}\n`);
    return 0;
  };
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') return print(overview());
  if (first === '--version' || first === '-v' || first === 'version') return print(packageVersion());
  if (first === 'help') {
    if (rest[0] === undefined) return print(overview());
    const command = COMMANDS[rest[0]];
    if (!command) throw unknownCommand(rest[0]);
    return print(await helpOf(command));
  }
  const command = COMMANDS[first];
  if (!command) throw unknownCommand(first);
  const beforeSeparator = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (beforeSeparator.includes('--help') || beforeSeparator.includes('-h')) return print(await helpOf(command));
  try {
    return await command.run(rest, io);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) throw err;
    // node:util's wording, cut before its advice about positionals, plus a "did you mean".
    const message = ((err as Error).message.split('. ')[0] ?? '').replace(/^Unknown option/, 'unknown option');
    const given = /'(-[^']+)'/.exec(message)?.[1];
    const suggestion = given !== undefined ? closest(given, optionsIn(await helpOf(command))) : undefined;
    throw new UsageError(`${message}${suggestion !== undefined ? ` — did you mean ${suggestion}?` : ''}`, first);
  }
}
