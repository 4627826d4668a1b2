import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { POWER_ADAPTERS } from '../../../adapters/power/index.js';
import type { PowerAdapter } from '../../../adapters/power/types.js';
import { captureLogger, envWithPath, makeTempDir, writeStub } from './stub.js';

let tmp: ReturnType<typeof makeTempDir>;
let bin: string;
beforeEach(() => {
  tmp = makeTempDir();
  bin = path.join(tmp.dir, 'bin');
});
afterEach(() => tmp.cleanup());

async function create(type: string, options: Record<string, unknown> = {}): Promise<PowerAdapter> {
  const load = POWER_ADAPTERS[type];
  if (!load) throw new Error(`no power adapter ${type}`);
  const mod = (await load()).default;
  expect(mod.slot).toBe('power');
  expect(mod.type).toBe(type);
  return mod.create(options, { log: captureLogger(), stateDir: path.join(tmp.dir, 'state'), env: envWithPath(bin) }) as Promise<PowerAdapter>;
}

describe('power adapter systemd', () => {
  it('reboots with `systemctl reboot`', async () => {
    const systemctl = writeStub(bin, 'systemctl');
    await (await create('systemd')).reboot();
    expect(systemctl.argvs()).toEqual([['reboot']]);
  });

  it('restarts the default unit everest.service, or the configured one', async () => {
    const systemctl = writeStub(bin, 'systemctl');
    await (await create('systemd')).restartApplication();
    await (await create('systemd', { unit: 'my-everest.service' })).restartApplication();
    expect(systemctl.argvs()).toEqual([
      ['restart', 'everest.service'],
      ['restart', 'my-everest.service'],
    ]);
  });

  it('rejects with the tool stderr when systemctl fails', async () => {
    writeStub(bin, 'systemctl', { exitCode: 1, stderr: 'Failed to restart everest.service: Unit not found.\n' });
    await expect((await create('systemd')).restartApplication()).rejects.toThrow(
      /systemctl restart everest.service exited with code 1: Failed to restart everest.service: Unit not found\./,
    );
  });

  it('rejects when the tool is missing', async () => {
    const adapter = (await (await POWER_ADAPTERS.systemd!()).default.create({}, {
      log: captureLogger(),
      stateDir: tmp.dir,
      env: { PATH: path.join(tmp.dir, 'empty') },
    })) as PowerAdapter;
    await expect(adapter.reboot()).rejects.toThrow(/systemctl reboot failed: .*ENOENT/);
  });
});

describe('power adapter command', () => {
  it('runs the configured argv without a shell', async () => {
    const rb = writeStub(bin, 'my-reboot');
    const rs = writeStub(bin, 'my-restart');
    const adapter = await create('command', { reboot: ['my-reboot', '--now', '$(touch x)'], restart: ['my-restart', 'everest manager'] });
    await adapter.reboot();
    await adapter.restartApplication();
    expect(rb.argvs()).toEqual([['--now', '$(touch x)']]);
    expect(rs.argvs()).toEqual([['everest manager']]);
    expect(fs.existsSync(path.join(process.cwd(), 'x'))).toBe(false);
  });

  it('rejects with stderr on a non-zero exit', async () => {
    writeStub(bin, 'my-reboot', { exitCode: 3, stderr: 'not permitted' });
    const adapter = await create('command', { reboot: ['my-reboot'], restart: ['my-reboot'] });
    await expect(adapter.reboot()).rejects.toThrow('my-reboot exited with code 3: not permitted');
  });

  it('refuses a config without argv arrays', async () => {
    await expect(create('command', { reboot: 'reboot now', restart: ['x'] })).rejects.toThrow(/"reboot" must be a non-empty array/);
  });
});

describe('power adapter simulated', () => {
  it('records the calls in a file and restarts nothing', async () => {
    const adapter = await create('simulated');
    await adapter.reboot();
    await adapter.restartApplication();
    const file = path.join(tmp.dir, 'state', 'adapters', 'simulated-power', 'calls.jsonl');
    const calls = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; at: string });
    expect(calls.map((c) => c.action)).toEqual(['reboot', 'restartApplication']);
    expect(Number.isNaN(Date.parse(calls[0]!.at))).toBe(false);
  });
});
