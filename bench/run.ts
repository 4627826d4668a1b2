/**
 * `npm run bench [name ...]`: runs every benchmark in bench/ (or the named ones) and prints
 * each one's figures. Benchmarks compare against a named baseline measured in the same run and
 * report ratios; they are not tests and assert nothing.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.endsWith('.d.ts') && !f.startsWith('_'))
  .map((f) => f.replace(/\.ts$/, ''))
  .filter((name) => wanted.length === 0 || wanted.includes(name))
  .sort();

const results: Record<string, unknown> = {};
for (const name of files) {
  const mod = (await import(pathToFileURL(path.join(here, `${name}.ts`)).href)) as { default?: () => Promise<Record<string, unknown>> };
  if (typeof mod.default !== 'function') continue;
  process.stdout.write(`\n== bench ${name} ==\n`);
  const started = Date.now();
  try {
    results[name] = await mod.default();
  } catch (err) {
    results[name] = { error: (err as Error).message };
    process.stdout.write(`bench ${name} failed: ${(err as Error).stack}\n`);
  }
  process.stdout.write(`${JSON.stringify(results[name], null, 2)}\n(${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
}
process.stdout.write(`\n${JSON.stringify({ machine: { cpus: (await import('node:os')).cpus().length, node: process.version }, date: new Date().toISOString(), results })}\n`);
