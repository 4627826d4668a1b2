/**
 * The board build: `deploy/build-bundle.mjs` bundles the daemon into one ESM file with its run-time
 * files beside it, under 5 MB and without node_modules. The bundle, copied away from the sources,
 * starts against a real mosquitto and answers EVerest; its `doctor` prints the table and exits
 * 0/1/2.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOT_REASONS } from '../../core/api.js';
import type { CheckResult } from '../../core/doctor/index.js';
import { EverestSim } from '../helpers/everest.js';
import { REPO_ROOT, tempDir, SIMULATED_ADAPTERS } from '../helpers/daemon.js';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';

const SIMULATED = SIMULATED_ADAPTERS;

let broker: Broker;
let out: string;
let built: { bundleBytes: number; totalBytes: number; bundle: string };

function runNode(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (text += c.toString()));
    child.on('exit', (code) => resolve({ code, out: text }));
  });
}

beforeAll(async () => {
  // outside the repository, so nothing can be found through the sources by accident
  out = mkdtempSync(path.join(os.tmpdir(), 'esc-bundle-'));
  const [b, r] = await Promise.all([startMosquitto(), runNode([path.join(REPO_ROOT, 'deploy/build-bundle.mjs'), '--outdir', out, '--json'])]);
  broker = b;
  expect(r.code, r.out).toBe(0);
  built = JSON.parse(r.out.trim().split('\n').at(-1)!) as typeof built;
});
afterAll(async () => {
  await broker?.stop();
  if (out) rmSync(out, { recursive: true, force: true });
});

const bundle = () => path.join(out, 'bin', 'everest-system.mjs');

describe('bundled build', () => {
  it('is one file plus its run-time files, under 5 MB on disk, with no node_modules and no dev dependencies', () => {
    expect(existsSync(bundle())).toBe(true);
    expect(existsSync(path.join(out, 'spec/system_API.yaml'))).toBe(true);
    expect(existsSync(path.join(out, 'core/config.schema.json'))).toBe(true);
    expect(existsSync(path.join(out, 'node_modules'))).toBe(false);
    const pkg = JSON.parse(readFileSync(path.join(out, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.devDependencies).toBeUndefined();
    expect(pkg.bin).toEqual({ 'everest-system': 'bin/everest-system.mjs' });
    expect(built.totalBytes).toBeLessThan(5 * 1024 * 1024);
    expect(built.bundleBytes).toBeGreaterThan(100 * 1024); // really contains the daemon
    console.info(`bundle ${(built.bundleBytes / 1024 / 1024).toFixed(2)} MB, total ${(built.totalBytes / 1024 / 1024).toFixed(2)} MB`);
  });

  it('starts on simulated adapters against a real mosquitto, answers EVerest, and loads a third-party plugin by path', async () => {
    const dir = tempDir('esc-bundle-run-');
    const config = path.join(dir, 'config.json');
    const lockFile = path.join(dir, 'vendor.lock');
    const vendorLock = { name: 'vendor-lock', module: path.join(REPO_ROOT, 'examples/vendor-installer/plugin.js'), options: { lockFile } };
    const plugins = ['firmware-update', 'reset', 'system-time', 'boot-reason', 'log-upload', vendorLock];
    writeFileSync(config, JSON.stringify({ stateDir: './state', mqtt: { url: broker.url, reconnectPeriodMs: 200 }, communicationCheck: { intervalMs: 200 }, adapters: SIMULATED, plugins }));
    const child: ChildProcess = spawn(process.execPath, [bundle(), 'run', '--config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const listening = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the bundle did not subscribe within 30 s:\n${text}`)), 30_000);
      const onData = (c: Buffer) => {
        text += c.toString();
        if (/listening for EVerest requests/.test(text)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      void exited.then(() => reject(new Error(`the bundle exited:\n${text}`)));
    });
    try {
      await listening;
      const ev = await EverestSim.connect(broker.url);
      expect(BOOT_REASONS).toContain(await ev.request('get_boot_reason', undefined, { timeoutMs: 10_000 }));
      expect(await ev.request('set_system_time', '2026-01-02T03:04:05Z', { timeoutMs: 10_000 })).toBe(true);
      expect(await ev.request('is_reset_allowed', 'Soft', { timeoutMs: 10_000 })).toBe(true);
      writeFileSync(lockFile, '');
      expect(await ev.request('is_reset_allowed', 'Soft', { timeoutMs: 10_000 })).toBe(false);
      child.kill('SIGTERM');
      expect(await exited, text).toBe(0);
      expect(text).toMatch(/"msg":"everest-system running"/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('doctor: table with fixes and exit 1 on failure, --json, exit 2 on an invalid config, exit 0 when all is well', async () => {
    const dir = tempDir('esc-bundle-doc-');
    mkdirSync(path.join(dir, 'state'));
    const write = (name: string, value: unknown) => {
      writeFileSync(path.join(dir, name), JSON.stringify(value));
      return path.join(dir, name);
    };
    const bad = write('bad.json', { stateDir: './state', mqtt: { url: broker.url }, plugins: ['firmware-update'], adapters: { installer: { type: 'script', command: ['./missing-installer', '{file}'] }, power: { type: 'simulated' } } });
    const good = write('good.json', { stateDir: './state', mqtt: { url: broker.url }, adapters: SIMULATED });
    const invalid = write('invalid.json', { mqtt: { url: 42 } });
    const doctor = (...args: string[]) => runNode([bundle(), 'doctor', '--heartbeat-wait-s', '0', ...args], { cwd: dir });
    const [table, json, broken, fine] = await Promise.all([doctor('--config', bad), doctor('--config', bad, '--json'), doctor('--config', invalid), doctor('--config', good)]);
    expect(table.code, table.out).toBe(1);
    expect(table.out).toMatch(/^CHECK\s+RESULT\s+DETAIL/);
    expect(table.out).toMatch(new RegExp(`installer script: command\\s+FAIL\\s+command: ${dir}/missing-installer does not exist\\n\\s+fix: install the program`));
    expect(table.out).toMatch(/\d+ passed, 1 warnings, 1 failed/);
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.out) as { ok: boolean; rows: CheckResult[] };
    expect(parsed.ok).toBe(false);
    expect(parsed.rows.filter((r) => r.result === 'FAIL').map((r) => r.check)).toEqual(['installer script: command']);
    expect(broken.code).toBe(2);
    expect(broken.out).toMatch(/config\s+FAIL\s+.*\/mqtt\/url: must be string/s);
    expect(fine.code, fine.out).toBe(0);
    expect(fine.out).toMatch(/broker\s+PASS\s+connected to/);
  });
});
