import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ConfigProblem } from './errors.js';
import type { Config } from './schema.js';

/** Why a file cannot be used, in plain words; undefined when it can. */
async function unusable(file: string, mode: number): Promise<string | undefined> {
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT') return `${file} does not exist`;
    if (code === 'EACCES') return `${file} cannot be reached: a directory on its path is not accessible to this user`;
    return `${file} cannot be examined (${String(code ?? (err as Error).message)})`;
  }
  if (mode === constants.R_OK && !info.isFile()) return `${file} is not a regular file`;
  if (mode === constants.W_OK && !info.isDirectory() && !info.isFile()) return `${file} is neither a file nor a directory`;
  try {
    await access(file, mode);
  } catch {
    return `${file} is not ${mode === constants.R_OK ? 'readable' : 'writable'} by this user (uid ${process.getuid?.() ?? '?'})`;
  }
  return undefined;
}

/**
 * The files a configuration names, checked the way the server will use them: certificates, keys
 * and CA bundles must exist and be readable, the audit file's directory writable. `serve` finds
 * the same problems when it starts; `validate` reports them beforehand.
 */
export async function fileProblems(config: Config): Promise<ConfigProblem[]> {
  const listeners = [
    ['server.tls', config.server.tls],
    ['server.http.tls', config.server.http?.tls],
  ] as const;
  const read: [string, string | undefined][] = [
    ...listeners.flatMap(([at, tls]): [string, string | undefined][] => [
      [`${at}.certFile`, tls?.certFile],
      [`${at}.keyFile`, tls?.keyFile],
      [`${at}.caFile`, tls?.caFile],
    ]),
    ['peer.caBundleFile', config.peer.caBundleFile],
  ];
  const checks = read
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(async ([path, file]) => ({ path, message: await unusable(file, constants.R_OK) }));
  const audit = config.telemetry.audit;
  if (audit.sink === 'file' && audit.file !== undefined) {
    const file = audit.file;
    checks.push(
      (async () => {
        const exists = await stat(file).then(() => true, () => false);
        return { path: 'telemetry.audit.file', message: await unusable(exists ? file : dirname(file), constants.W_OK) };
      })(),
    );
  }
  return (await Promise.all(checks)).filter((p): p is ConfigProblem => p.message !== undefined);
}
