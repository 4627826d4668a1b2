/**
 * reset end to end: real mosquitto, the real kernel with the reset and boot-reason plugins,
 * EVerest played by EverestSim, and a recording `systemctl` first on PATH of the daemon only.
 */
import { writeFileSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { EverestSim, type EverestSide } from '../helpers/everest.js';
import { pathWith, recordingStub, spawnDaemon, startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon.js';

const VETO_PLUGIN = fileURLToPath(new URL('./assets/veto-plugin.ts', import.meta.url));
let broker: Broker;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

interface Setup {
  daemon: RunningDaemon;
  ev: EverestSide;
  systemctl: ReturnType<typeof recordingStub>;
  bin: string;
  bootIdFile: string;
  stateDir: string;
  restartDaemon(bootId?: string): Promise<RunningDaemon>;
}

/** daemon with reset + boot-reason, power adapter systemd; a kernel boot id file the test controls */
async function setup(resetOptions: Record<string, unknown> = {}, extraPlugins: unknown[] = [], systemctlExit = 0): Promise<Setup> {
  const dir = tempDir('esc-reset-');
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  const systemctl = recordingStub(bin, 'systemctl', systemctlExit ? { exitCode: systemctlExit, stderr: 'Failed to reboot system: Access denied\n' } : {});
  const bootIdFile = path.join(dir, 'boot_id');
  writeFileSync(bootIdFile, 'boot-1\n');
  const stateDir = path.join(dir, 'state');
  const config = {
    stateDir,
    mqtt: { url: broker.url },
    adapters: { power: { type: 'systemd' } },
    plugins: [
      { name: 'reset', options: resetOptions },
      { name: 'boot-reason', options: { bootIdPath: bootIdFile, watchdogGlob: path.join(dir, 'watchdog', '*', 'bootstatus') } },
      ...extraPlugins,
    ],
  };
  const env = { ...process.env, PATH: pathWith(bin) };
  const daemon = await startDaemon(config, { env });
  const ev = await EverestSim.connect(broker.url);
  const s: Setup = {
    daemon, ev, systemctl, bin, bootIdFile, stateDir,
    async restartDaemon(bootId) {
      await s.daemon.stop();
      if (bootId) writeFileSync(bootIdFile, `${bootId}\n`);
      s.daemon = await startDaemon(config, { env });
      return s.daemon;
    },
  };
  return s;
}

/** EVerest starts: heartbeat 0.. and the boot reason question it asks once at start-up */
async function everestStarts(s: Setup): Promise<string> {
  for (const n of ['0', '1', '2']) await s.ev.publishRaw('heartbeat', n);
  return s.ev.request<string>('get_boot_reason');
}

/** EVerest restarts: its heartbeat counter goes back to 0 */
async function everestRestarts(s: Setup): Promise<void> {
  const before = s.daemon.logs.filter((l) => /EVerest restarted/.test(l.msg ?? '')).length;
  await s.ev.publishRaw('heartbeat', '0');
  await s.daemon.waitForLog(() => s.daemon.logs.filter((l) => /EVerest restarted/.test(l.msg ?? '')).length > before);
  await s.ev.publishRaw('heartbeat', '1');
}

describe('reset', () => {
  test.each([
    ['Soft', false, 'RemoteReset'],
    ['Soft', true, 'ScheduledReset'],
  ] as const)('%s reset (scheduled=%s) restarts EVerest; the restarted EVerest hears %s', async (type, scheduled, reason) => {
    const s = await setup();
    expect(await everestStarts(s)).toBe('PowerUp');
    expect(await s.ev.request('is_reset_allowed', type)).toBe(true);
    await s.ev.command('reset', { type, scheduled });
    await s.daemon.waitForLog(/Soft reset done/);
    expect(s.systemctl.calls()).toEqual([['restart', 'everest.service']]);
    await everestRestarts(s);
    expect(await s.ev.request('get_boot_reason')).toBe(reason);
    // told once; a later EVerest restart without a reset command is an application reset
    await everestRestarts(s);
    expect(await s.ev.request('get_boot_reason')).toBe('ApplicationReset');
  });

  test.each([
    ['Hard', false, 'RemoteReset'],
    ['Hard', true, 'ScheduledReset'],
    ['NotSpecified', false, 'RemoteReset'],
    ['NotSpecified', true, 'ScheduledReset'],
  ] as const)('%s reset (scheduled=%s) reboots; after the reboot the boot reason is %s, once', async (type, scheduled, reason) => {
    const s = await setup();
    expect(await everestStarts(s)).toBe('PowerUp');
    await s.ev.command('reset', { type, scheduled });
    await s.daemon.waitForLog(/reboot under way/);
    expect(s.systemctl.calls()).toEqual([['reboot']]);
    await s.restartDaemon('boot-2'); // the simulated reboot
    expect(await everestStarts(s)).toBe(reason);
    await s.restartDaemon('boot-3'); // a later power cycle
    expect(await everestStarts(s)).toBe('PowerUp');
  });

  test('a Soft reset that restarts the daemon too (same kernel boot) still reports RemoteReset', async () => {
    const s = await setup();
    expect(await everestStarts(s)).toBe('PowerUp');
    await s.ev.command('reset', { type: 'Soft', scheduled: false });
    await s.daemon.waitForLog(/Soft reset done/);
    await s.restartDaemon(); // same boot id: the OS kept running
    expect(await everestStarts(s)).toBe('RemoteReset');
    await s.restartDaemon();
    expect(await everestStarts(s)).toBe('ApplicationReset');
  });

  test('NotSpecified follows the notSpecified option', async () => {
    const s = await setup({ notSpecified: 'Soft' });
    await s.ev.command('reset', { type: 'NotSpecified', scheduled: false });
    await s.daemon.waitForLog(/Soft reset done/);
    expect(s.systemctl.calls()).toEqual([['restart', 'everest.service']]);
  });

  test('a reset arriving while one is under way is not run twice', async () => {
    const s = await setup({ delayS: 0.5 });
    await s.ev.command('reset', { type: 'Hard', scheduled: false });
    await s.ev.command('reset', { type: 'Hard', scheduled: false });
    await s.daemon.waitForLog(/reset ignored: a reset is already under way/);
    await s.daemon.waitForLog(/reboot under way/);
    await s.ev.command('reset', { type: 'Soft', scheduled: false });
    await s.daemon.waitForLog((l) => s.daemon.logs.filter((x) => x.msg === 'reset ignored: a reset is already under way').length === 2);
    expect(s.systemctl.calls()).toEqual([['reboot']]);
  });

  test('is_reset_allowed is false while another plugin vetoes, and says why', async () => {
    const flag = path.join(tempDir('esc-flag-'), 'installing');
    const s = await setup({}, [{ name: 'veto-test', module: VETO_PLUGIN, options: { flagFile: flag } }]);
    expect(await s.ev.request('is_reset_allowed', 'NotSpecified')).toBe(true);
    writeFileSync(flag, '');
    expect(await s.ev.request('is_reset_allowed', 'NotSpecified')).toBe(false);
    expect(await s.ev.request('is_reset_allowed', 'Soft')).toBe(false);
    await s.daemon.waitForLog(/refused: veto-test: firmware installation running/);
    rmSync(flag);
    expect(await s.ev.request('is_reset_allowed', 'Hard')).toBe(true);
    expect(s.systemctl.calls()).toEqual([]);
  });

  test('invalid reset messages are logged and change nothing', async () => {
    const s = await setup();
    await s.ev.publishRaw('reset', '{"type":"Warm","scheduled":false}');
    await s.ev.publishRaw('reset', '{"type":"Hard","scheduled":"yes"}');
    await s.ev.publishRaw('reset', 'not json');
    expect(await s.ev.request('is_reset_allowed', 'Warm')).toBe(false);
    // the daemon still works and nothing was reset
    expect(await everestStarts(s)).toBe('PowerUp');
    expect(s.systemctl.calls()).toEqual([]);
    await s.restartDaemon('boot-2');
    expect(await everestStarts(s)).toBe('PowerUp');
  });

  test('a failing reboot command is logged; no reset reason is left behind', async () => {
    const s = await setup({}, [], 1);
    await s.ev.command('reset', { type: 'Hard', scheduled: false });
    await s.daemon.waitForLog(/reset failed: systemctl reboot exited with code 1: Failed to reboot system: Access denied/);
    expect(s.systemctl.calls()).toEqual([['reboot']]);
    await s.restartDaemon('boot-2');
    expect(await everestStarts(s)).toBe('PowerUp');
  });

  test('through the CLI daemon: Hard reset runs systemctl reboot, the next boot reports RemoteReset', async () => {
    const dir = tempDir('esc-reset-cli-');
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    const systemctl = recordingStub(bin, 'systemctl');
    const bootIdFile = path.join(dir, 'boot_id');
    writeFileSync(bootIdFile, 'boot-1\n');
    const config = {
      stateDir: path.join(dir, 'state'),
      mqtt: { url: broker.url },
      adapters: { power: { type: 'systemd', unit: 'everest-core.service' } },
      plugins: ['reset', { name: 'boot-reason', options: { bootIdPath: bootIdFile, watchdogGlob: path.join(dir, 'none', '*') } }],
    };
    const ev = await EverestSim.connect(broker.url);
    const first = await spawnDaemon(config, { env: { PATH: pathWith(bin) } });
    await first.waitForLog(/listening for EVerest requests/);
    expect(await ev.request('get_boot_reason', undefined, { timeoutMs: 10_000 })).toBe('PowerUp');
    await ev.command('reset', { type: 'NotSpecified', scheduled: false });
    await first.waitForLog(/reboot under way/);
    expect(systemctl.calls()).toEqual([['reboot']]);
    first.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    writeFileSync(bootIdFile, 'boot-2\n');
    const second = await spawnDaemon(config, { env: { PATH: pathWith(bin) } });
    await second.waitForLog(/listening for EVerest requests/);
    expect(await ev.request('get_boot_reason', undefined, { timeoutMs: 10_000 })).toBe('RemoteReset');
    await ev.command('reset', { type: 'Soft', scheduled: false });
    await second.waitForLog(/Soft reset done/);
    expect(systemctl.calls()).toEqual([['reboot'], ['restart', 'everest-core.service']]);
  });
});
