/**
 * set_system_time end to end: real mosquitto, the real kernel with the system-time plugin, EVerest
 * played by EverestSim, recording stand-ins for timedatectl/date/hwclock first on PATH of the
 * daemon only, so the clock of this machine is never touched.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { EverestSim, type EverestSide } from '../helpers/everest.js';
import { pathWith, recordingStub, startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon.js';

let broker: Broker;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

const SHOW = (synced: boolean) => `Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=${synced ? 'yes' : 'no'}\n`;

function binDir(): string {
  const bin = path.join(tempDir('esc-time-'), 'bin');
  mkdirSync(bin);
  return bin;
}

async function start(bin: string, clock: Record<string, unknown>, options: Record<string, unknown> = {}): Promise<{ daemon: RunningDaemon; ev: EverestSide }> {
  const daemon = await startDaemon(
    { mqtt: { url: broker.url }, adapters: { clock }, plugins: [{ name: 'system-time', options }] },
    { env: { ...process.env, PATH: pathWith(bin) } },
  );
  return { daemon, ev: await EverestSim.connect(broker.url) };
}

/** a whole-second time `s` seconds from now, as the CSMS would send it (with an offset) */
function csmsTime(s: number): { text: string; utc: Date } {
  const utc = new Date(Math.floor(Date.now() / 1000 + s) * 1000);
  const local = new Date(utc.getTime() + 2 * 3600_000);
  return { text: local.toISOString().replace('.000Z', '+02:00'), utc };
}

const spaced = (d: Date) => d.toISOString().slice(0, 19).replace('T', ' ');

describe('set_system_time', () => {
  test('timedatectl: sets the clock in UTC and replies true', async () => {
    const bin = binDir();
    const tdc = recordingStub(bin, 'timedatectl', { stdout: SHOW(false) });
    const { ev } = await start(bin, { type: 'timedatectl' });
    const t = csmsTime(3600);
    expect(await ev.request('set_system_time', t.text)).toBe(true);
    expect(tdc.calls()).toEqual([['set-time', spaced(t.utc)]]);
  });

  test('timedatectl with disableNtp switches NTP off first', async () => {
    const bin = binDir();
    const tdc = recordingStub(bin, 'timedatectl');
    const { ev } = await start(bin, { type: 'timedatectl', disableNtp: true });
    const t = csmsTime(-3600);
    expect(await ev.request('set_system_time', t.text)).toBe(true);
    expect(tdc.calls()).toEqual([['set-ntp', 'false'], ['set-time', spaced(t.utc)]]);
  });

  test('date + hwclock: sets the system and hardware clock', async () => {
    const bin = binDir();
    const date = recordingStub(bin, 'date');
    const hwclock = recordingStub(bin, 'hwclock');
    const { ev } = await start(bin, { type: 'date', hwclock: true });
    const t = csmsTime(600);
    expect(await ev.request('set_system_time', t.text)).toBe(true);
    expect(date.calls()).toEqual([['-u', '-s', spaced(t.utc)]]);
    expect(hwclock.calls()).toEqual([['--systohc', '--utc']]);
  });

  test('command adapter: {time} becomes RFC 3339 UTC', async () => {
    const bin = binDir();
    const tool = recordingStub(bin, 'board-clock');
    const { ev } = await start(bin, { type: 'command', set: ['board-clock', 'set', '{time}'] });
    const t = csmsTime(600);
    expect(await ev.request('set_system_time', t.text)).toBe(true);
    expect(tool.calls()).toEqual([['set', t.utc.toISOString().replace('.000Z', 'Z')]]);
  });

  test('invalid and extreme times: reply false, clock untouched, logged', async () => {
    const bin = binDir();
    const tdc = recordingStub(bin, 'timedatectl');
    const { ev, daemon } = await start(bin, { type: 'timedatectl' });
    const farFuture = new Date(Date.now() + 21 * 365.25 * 86_400_000).toISOString();
    for (const bad of ['2024-12-31T23:59:59Z', '1970-01-01T00:00:00Z', farFuture, '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', 'next tuesday', 1767225600, true, null]) {
      expect(await ev.request('set_system_time', bad), JSON.stringify(bad)).toBe(false);
    }
    expect(tdc.calls()).toEqual([]);
    // what reached the plugin was refused with a reason in the log
    await daemon.waitForLog(/set_system_time refused: 2024-12-31T23:59:59Z is before 2025-01-01T00:00:00.000Z/);
    await daemon.waitForLog(/set_system_time refused: .* is too far ahead/);
    // still answering
    expect(await ev.request('set_system_time', csmsTime(100).text)).toBe(true);
    expect(tdc.calls()).toHaveLength(1);
  });

  test('notBefore and maxAheadS options move the limits', async () => {
    const bin = binDir();
    const tdc = recordingStub(bin, 'timedatectl');
    const { ev } = await start(bin, { type: 'timedatectl' }, { notBefore: '2020-01-01T00:00:00Z', maxAheadS: 3600 });
    expect(await ev.request('set_system_time', '2020-06-01T00:00:00Z')).toBe(true);
    expect(await ev.request('set_system_time', '2019-12-31T23:59:59Z')).toBe(false);
    expect(await ev.request('set_system_time', csmsTime(7200).text)).toBe(false);
    expect(tdc.calls()).toEqual([['set-time', '2020-06-01 00:00:00']]);
  });

  test('a change below minStepS is skipped (each Heartbeat does not step the clock)', async () => {
    const bin = binDir();
    const tdc = recordingStub(bin, 'timedatectl');
    const { ev } = await start(bin, { type: 'timedatectl' }, { minStepS: 30 });
    expect(await ev.request('set_system_time', new Date().toISOString())).toBe(true);
    expect(await ev.request('set_system_time', csmsTime(10).text)).toBe(true);
    expect(tdc.calls()).toEqual([]);
    const t = csmsTime(45);
    expect(await ev.request('set_system_time', t.text)).toBe(true);
    expect(tdc.calls()).toEqual([['set-time', spaced(t.utc)]]);
  });

  test('skipWhenNtpSynchronized: NTP synchronised -> true without setting', async () => {
    const bin = binDir();
    const tdc = recordingStub(bin, 'timedatectl', { stdout: SHOW(true) });
    const { ev } = await start(bin, { type: 'timedatectl' }, { skipWhenNtpSynchronized: true });
    expect(await ev.request('set_system_time', csmsTime(3600).text)).toBe(true);
    expect(tdc.calls()).toEqual([['show']]);
  });

  test('skipWhenNtpSynchronized: NTP not synchronised -> the clock is set', async () => {
    const bin = binDir();
    const tdc = recordingStub(bin, 'timedatectl', { stdout: SHOW(false) });
    const { ev } = await start(bin, { type: 'timedatectl' }, { skipWhenNtpSynchronized: true });
    const t = csmsTime(3600);
    expect(await ev.request('set_system_time', t.text)).toBe(true);
    expect(tdc.calls()).toEqual([['show'], ['set-time', spaced(t.utc)]]);
  });

  test('the tool fails: reply false and the tool error is logged', async () => {
    const bin = binDir();
    const tdc = recordingStub(bin, 'timedatectl', { exitCode: 1, stderr: 'Failed to set time: Automatic time synchronization is enabled\n' });
    const { ev, daemon } = await start(bin, { type: 'timedatectl' });
    expect(await ev.request('set_system_time', csmsTime(3600).text)).toBe(false);
    expect(tdc.calls()).toHaveLength(1);
    await daemon.waitForLog(/set_system_time failed: timedatectl set-time .* exited with code 1: Failed to set time: Automatic time synchronization is enabled/);
  });

  test('date fails: reply false, hwclock not run', async () => {
    const bin = binDir();
    recordingStub(bin, 'date', { exitCode: 1, stderr: 'date: cannot set date: Operation not permitted\n' });
    const hwclock = recordingStub(bin, 'hwclock');
    const { ev } = await start(bin, { type: 'date', hwclock: true });
    expect(await ev.request('set_system_time', csmsTime(3600).text)).toBe(false);
    expect(hwclock.calls()).toEqual([]);
  });

  test('simulated clock: follows the CSMS time without touching the machine clock', async () => {
    const bin = binDir();
    const date = recordingStub(bin, 'date');
    const tdc = recordingStub(bin, 'timedatectl');
    const { ev, daemon } = await start(bin, { type: 'simulated' });
    const t = csmsTime(86_400);
    expect(await ev.request('set_system_time', t.text)).toBe(true);
    await daemon.waitForLog(/simulated clock set/);
    // the next Heartbeat time is within minStepS of the simulated clock: skipped
    expect(await ev.request('set_system_time', csmsTime(86_400).text)).toBe(true);
    await daemon.waitForLog(/clock already within minStepS/);
    expect(daemon.logs.filter((l) => /simulated clock set/.test(l.msg ?? ''))).toHaveLength(1);
    expect(Math.abs(Date.now() - t.utc.getTime())).toBeGreaterThan(80_000_000);
    expect(date.calls()).toEqual([]);
    expect(tdc.calls()).toEqual([]);
  });
});
