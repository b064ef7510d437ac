/**
 * docs/benchmark.md: each benchmark writes its own section ("## gRPC", "## Memory") and leaves
 * every other section of the file as it is.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem } from 'node:os';

const TITLE = '# Benchmarks';

/** Replaces the `## {heading}` section of `file` (up to the next `## ` heading) with `body`, or appends it. */
export async function writeSection(file: string, heading: string, body: string): Promise<void> {
  const current = await readFile(file, 'utf8').catch(() => `${TITLE}\n`);
  const lines = current.split('\n');
  const start = lines.findIndex((l) => l.trim() === `## ${heading}`);
  const section = [`## ${heading}`, '', ...body.trimEnd().split('\n'), ''];
  if (start === -1) {
    const text = `${current.trimEnd()}\n\n${section.join('\n')}`;
    await writeFile(file, text);
    return;
  }
  let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  if (end === -1) end = lines.length;
  const text = [...lines.slice(0, start), ...section, ...lines.slice(end)].join('\n');
  await writeFile(file, `${text.trimEnd()}\n`);
}

/** A Markdown table; the first column left-aligned, the others right-aligned. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const align = head.map((_, i) => (i === 0 ? '---' : '---:'));
  return [head, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** Bytes as whole mebibytes ("204 MB"). */
export function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MB`;
}

/** The machine a figure was measured on: cores, CPU model, memory and Node.js version. */
export function machine(): string {
  return `${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${mb(totalmem())} RAM, Node.js ${process.version}`;
}
