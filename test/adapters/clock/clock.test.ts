import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLOCK_ADAPTERS } from '../../../adapters/clock/index.js';
import type { ClockAdapter } from '../../../adapters/clock/types.js';
import { parseNtpSynchronized } from '../../../adapters/clock/timedatectl.js';
import { captureLogger, envWithPath, makeTempDir, writeStub } from '../power/stub.js';

let tmp: ReturnType<typeof makeTempDir>;
let bin: string;
beforeEach(() => {
  tmp = makeTempDir();
  bin = path.join(tmp.dir, 'bin');
});
afterEach(() => tmp.cleanup());

const stateDir = () => path.join(tmp.dir, 'state');

async function create(type: string, options: Record<string, unknown> = {}): Promise<ClockAdapter> {
  const load = CLOCK_ADAPTERS[type];
  if (!load) throw new Error(`no clock adapter ${type}`);
  const mod = (await load()).default;
  expect(mod.slot).toBe('clock');
  expect(mod.type).toBe(type);
  return mod.create(options, { log: captureLogger(), stateDir: stateDir(), env: envWithPath(bin) }) as Promise<ClockAdapter>;
}

const SHOW = 'Timezone=Europe/Berlin\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\nTimeUSec=Wed 2026-11-25 10:53:00 UTC\n';
// 2026-03-01T12:00:00.750+01:00 = 11:00:00.750 UTC
const T = new Date('2026-03-01T12:00:00.750+01:00');

describe('clock adapter timedatectl', () => {
  it('sets the time in UTC with set-time', async () => {
    const tdc = writeStub(bin, 'timedatectl');
    await (await create('timedatectl')).setTime(T);
    expect(tdc.calls()).toEqual([{ argv: ['set-time', '2026-03-01 11:00:00'], tz: 'UTC' }]);
  });

  it('switches NTP off first when disableNtp is set', async () => {
    const tdc = writeStub(bin, 'timedatectl');
    await (await create('timedatectl', { disableNtp: true })).setTime(T);
    expect(tdc.argvs()).toEqual([
      ['set-ntp', 'false'],
      ['set-time', '2026-03-01 11:00:00'],
    ]);
  });

  it('rejects with the stderr of set-time', async () => {
    writeStub(bin, 'timedatectl', { byFirstArg: { 'set-time': { exitCode: 1, stderr: 'Failed to set time: Automatic time synchronization is enabled\n' } } });
    await expect((await create('timedatectl')).setTime(T)).rejects.toThrow(
      'timedatectl set-time 2026-03-01 11:00:00 exited with code 1: Failed to set time: Automatic time synchronization is enabled',
    );
  });

  it('does not set the time when set-ntp false fails', async () => {
    const tdc = writeStub(bin, 'timedatectl', { byFirstArg: { 'set-ntp': { exitCode: 1, stderr: 'Access denied' } } });
    await expect((await create('timedatectl', { disableNtp: true })).setTime(T)).rejects.toThrow(/Access denied/);
    expect(tdc.argvs()).toEqual([['set-ntp', 'false']]);
  });

  it('reads NTPSynchronized from timedatectl show', async () => {
    const tdc = writeStub(bin, 'timedatectl', { byFirstArg: { show: { stdout: SHOW } } });
    expect(await (await create('timedatectl')).ntpSynchronized!()).toBe(true);
    expect(tdc.argvs()).toEqual([['show']]);
  });

  it('reports NTP state unknown when timedatectl fails', async () => {
    writeStub(bin, 'timedatectl', { exitCode: 1, stderr: 'System has not been booted with systemd as init system (PID 1).' });
    expect(await (await create('timedatectl')).ntpSynchronized!()).toBeUndefined();
  });

  it('parses the show output', () => {
    expect(parseNtpSynchronized(SHOW)).toBe(true);
    expect(parseNtpSynchronized(SHOW.replace('NTPSynchronized=yes', 'NTPSynchronized=no'))).toBe(false);
    expect(parseNtpSynchronized('NTP=yes\n')).toBeUndefined();
  });

  it('refuses an invalid Date', async () => {
    const tdc = writeStub(bin, 'timedatectl');
    await expect((await create('timedatectl')).setTime(new Date('nope'))).rejects.toThrow('invalid time');
    expect(tdc.calls()).toEqual([]);
  });
});

describe('clock adapter date', () => {
  it('runs date -u -s with the UTC time', async () => {
    const date = writeStub(bin, 'date');
    const hwclock = writeStub(bin, 'hwclock');
    await (await create('date')).setTime(T);
    expect(date.argvs()).toEqual([['-u', '-s', '2026-03-01 11:00:00']]);
    expect(hwclock.argvs()).toEqual([]);
  });

  it('writes the hardware clock when hwclock is set', async () => {
    const date = writeStub(bin, 'date');
    const hwclock = writeStub(bin, 'hwclock');
    await (await create('date', { hwclock: true })).setTime(T);
    expect(date.argvs()).toEqual([['-u', '-s', '2026-03-01 11:00:00']]);
    expect(hwclock.argvs()).toEqual([['--systohc', '--utc']]);
  });

  it('rejects and skips hwclock when date fails', async () => {
    writeStub(bin, 'date', { exitCode: 1, stderr: 'date: cannot set date: Operation not permitted' });
    const hwclock = writeStub(bin, 'hwclock');
    await expect((await create('date', { hwclock: true })).setTime(T)).rejects.toThrow(/Operation not permitted/);
    expect(hwclock.argvs()).toEqual([]);
  });

  it('rejects when hwclock fails', async () => {
    writeStub(bin, 'date');
    writeStub(bin, 'hwclock', { exitCode: 1, stderr: 'hwclock: Cannot access the Hardware Clock via any known method.' });
    await expect((await create('date', { hwclock: true })).setTime(T)).rejects.toThrow(/hwclock --systohc --utc exited with code 1: hwclock: Cannot access/);
  });
});

describe('clock adapter command', () => {
  it('replaces {time} with RFC 3339 UTC', async () => {
    const tool = writeStub(bin, 'set-clock');
    await (await create('command', { set: ['set-clock', '--at={time}', '{time}'] })).setTime(T);
    expect(tool.argvs()).toEqual([['--at=2026-03-01T11:00:00Z', '2026-03-01T11:00:00Z']]);
  });

  it('rejects with stderr on failure', async () => {
    writeStub(bin, 'set-clock', { exitCode: 2, stderr: 'rtc busy' });
    await expect((await create('command', { set: ['set-clock', '{time}'] })).setTime(T)).rejects.toThrow(
      'set-clock 2026-03-01T11:00:00Z exited with code 2: rtc busy',
    );
  });

  it('refuses a command without {time}', async () => {
    await expect(create('command', { set: ['set-clock'] })).rejects.toThrow(/must contain \{time\}/);
  });
});

describe('clock adapter simulated', () => {
  it('keeps an offset, persists it, and never runs a tool', async () => {
    const date = writeStub(bin, 'date');
    const clock = await create('simulated');
    const target = new Date(Date.now() + 3_600_000);
    await clock.setTime(target);
    expect(Math.abs(clock.now!().getTime() - target.getTime())).toBeLessThan(1000);
    const again = await create('simulated');
    expect(Math.abs(again.now!().getTime() - target.getTime())).toBeLessThan(1000);
    const saved = JSON.parse(fs.readFileSync(path.join(stateDir(), 'adapters', 'simulated-clock', 'clock.json'), 'utf8'));
    expect(saved.lastSet).toBe(target.toISOString());
    expect(date.calls()).toEqual([]);
  });

  it('answers ntpSynchronized from its option', async () => {
    expect(await (await create('simulated')).ntpSynchronized!()).toBe(false);
    expect(await (await create('simulated', { ntpSynchronized: true })).ntpSynchronized!()).toBe(true);
  });
});
