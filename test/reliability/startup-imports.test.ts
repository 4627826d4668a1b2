/**
 * Start-up cost: loading the daemon's kernel must not load the embedded broker (aedes, about
 * 80 ms of imports on the test machine), which only a development config uses; loading the
 * built-in plugins and log sources must not load what only a transfer, an archive, a glob or a
 * snapshot needs (basic-ftp, tar, tinyglobby, systeminformation), nor execa (sd_notify, probe,
 * doctor). The footprint benchmark (bench/footprint.ts) measures the start-up time itself.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../helpers/daemon.js';

/** packages under node_modules that importing the entries loads (ESM and CommonJS), seen by a resolve hook */
function loaded(...entries: string[]): string[] {
  const dir = tempDir('imports-');
  const hooks = path.join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
     export async function resolve(spec, ctx, next) {
       const r = await next(spec, ctx);
       const m = /node_modules\\/(.+)$/.exec(r.url);
       if (m) appendFileSync(${JSON.stringify(path.join(dir, 'loaded.txt'))}, m[1] + '\\n');
       return r;
     }`,
  );
  const register = path.join(dir, 'register.mjs');
  writeFileSync(register, `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(hooks).href)});`);
  execFileSync(process.execPath, ['--import', register, '--import', 'tsx', '--input-type=module', '-e', `await import('reflect-metadata'); ${entries.map((e) => `await import(${JSON.stringify(e)});`).join(' ')}`], {
    cwd: REPO_ROOT,
    stdio: 'ignore',
  });
  const files = readFileSync(path.join(dir, 'loaded.txt'), 'utf8').split('\n').filter(Boolean);
  lastFiles = files;
  return [...new Set(files.map((f) => /^((?:@[^/]+\/)?[^/]+)/.exec(f)![1]!))];
}
/** files under node_modules that the last `loaded` call loaded */
let lastFiles: string[] = [];

describe('start-up imports', () => {
  it('the kernel does not load aedes unless the embedded broker is configured', () => {
    const pkgs = loaded('./core/kernel.ts');
    expect(pkgs).toContain('mqtt'); // the probe sees what is loaded
    expect(pkgs).not.toContain('aedes');
  });

  it('the built-in plugins and log sources load their heavy dependencies only when used', () => {
    const pkgs = loaded(
      './core/kernel.ts',
      './core/sdNotify.ts',
      ...['firmware-update', 'reset', 'system-time', 'boot-reason', 'log-upload'].map((p) => `./plugins/${p}/index.ts`),
      './adapters/log-source/files.ts',
      './adapters/log-source/system-snapshot.ts',
    );
    expect(pkgs).toContain('mqtt');
    expect(pkgs).toContain('tsyringe');
    for (const heavy of ['basic-ftp', 'tar', 'tinyglobby', 'systeminformation', 'execa', 'aedes', 'yaml']) expect(pkgs).not.toContain(heavy);
    // the validators are compiled ahead of time: only ajv's small run-time helpers are loaded, not its compiler
    expect(lastFiles.filter((f) => f.startsWith('ajv/'))).toEqual(expect.arrayContaining(['ajv/dist/runtime/ucs2length.js']));
    expect(lastFiles.filter((f) => f.startsWith('ajv/') && !f.startsWith('ajv/dist/runtime/'))).toEqual([]);
  });
});
