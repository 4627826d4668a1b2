/**
 * Start-up cost: loading the daemon's kernel must not load the embedded broker (aedes, about
 * 80 ms of imports on the test machine), which only a development config uses. The footprint
 * benchmark (bench/footprint.ts) measures the start-up time itself.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../helpers/daemon.js';

/** packages under node_modules that importing `entry` loads (ESM and CommonJS), seen by a resolve hook */
function loaded(entry: string): string[] {
  const dir = tempDir('imports-');
  const hooks = path.join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
     export async function resolve(spec, ctx, next) {
       const r = await next(spec, ctx);
       const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(r.url);
       if (m) appendFileSync(${JSON.stringify(path.join(dir, 'loaded.txt'))}, m[1] + '\\n');
       return r;
     }`,
  );
  const register = path.join(dir, 'register.mjs');
  writeFileSync(register, `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(hooks).href)});`);
  execFileSync(process.execPath, ['--import', register, '--import', 'tsx', '--input-type=module', '-e', `await import('reflect-metadata'); await import(${JSON.stringify(entry)});`], {
    cwd: REPO_ROOT,
    stdio: 'ignore',
  });
  return [...new Set(readFileSync(path.join(dir, 'loaded.txt'), 'utf8').split('\n').filter(Boolean))];
}

describe('start-up imports', () => {
  it('the kernel does not load aedes unless the embedded broker is configured', () => {
    const pkgs = loaded('./core/kernel.ts');
    expect(pkgs).toContain('mqtt'); // the probe sees what is loaded
    expect(pkgs).not.toContain('aedes');
  });
});
