import { describe, expect, it } from 'vitest';
import type { ClockAdapter } from '../../core/api.js';
import SystemTimePlugin from '../../plugins/system-time/index.js';
import { parseRfc3339 } from '../../plugins/system-time/rfc3339.js';
import { fakeContext, withDefaults } from '../reset/fake-context.js';

class RecordingClock implements ClockAdapter {
  readonly type = 'recording';
  set: string[] = [];
  fail: Error | undefined;
  ntp: boolean | undefined;
  now?: () => Date;
  async setTime(time: Date) {
    this.set.push(time.toISOString());
    if (this.fail) throw this.fail;
  }
  async ntpSynchronized() {
    return this.ntp;
  }
}

function setup(options: Record<string, unknown> = {}) {
  const ctx = fakeContext('system-time', withDefaults(SystemTimePlugin.optionsSchema, options));
  const clock = new RecordingClock();
  return { ctx, clock, plugin: new SystemTimePlugin(ctx, clock) };
}

const ahead = (s: number) => new Date(Date.now() + s * 1000);

describe('parseRfc3339', () => {
  it('accepts RFC 3339 with Z, offsets, fractions and a space separator', () => {
    expect(parseRfc3339('2026-03-01T12:00:00Z')?.toISOString()).toBe('2026-03-01T12:00:00.000Z');
    expect(parseRfc3339('2026-03-01T12:00:00.250+01:30')?.toISOString()).toBe('2026-03-01T10:30:00.250Z');
    expect(parseRfc3339('2026-03-01t00:30:00-05:00')?.toISOString()).toBe('2026-03-01T05:30:00.000Z');
    expect(parseRfc3339('2026-03-01 12:00:00z')?.toISOString()).toBe('2026-03-01T12:00:00.000Z');
    expect(parseRfc3339('2024-02-29T00:00:00Z')?.toISOString()).toBe('2024-02-29T00:00:00.000Z');
    expect(parseRfc3339('2016-12-31T23:59:60Z')?.toISOString()).toBe('2016-12-31T23:59:59.999Z');
  });

  it('rejects impossible or incomplete times and non-strings', () => {
    for (const bad of [
      '2026-13-01T00:00:00Z', '2026-02-29T00:00:00Z', '2026-04-31T00:00:00Z', '2026-01-01T24:00:00Z',
      '2026-01-01T00:60:00Z', '2026-01-01T00:00:00', '2026-01-01', '2026-01-01T00:00:00+25:00',
      '2026-01-01T00:00:00+01', 'tomorrow', '', ' 2026-01-01T00:00:00Z', '1767225600',
    ]) expect(parseRfc3339(bad), bad).toBeUndefined();
    for (const bad of [1767225600, null, undefined, {}, ['2026-01-01T00:00:00Z'], true]) expect(parseRfc3339(bad)).toBeUndefined();
  });
});

describe('system-time plugin (unit)', () => {
  it('sets the clock and replies true', async () => {
    const { clock, plugin } = setup();
    const t = ahead(3600);
    expect(await plugin.setSystemTime(t.toISOString())).toBe(true);
    expect(clock.set).toEqual([t.toISOString()]);
  });

  it('a request that waited behind a slow one longer than minStepS is applied with its wait added', async () => {
    const { clock, plugin } = setup({ minStepS: 0.2 });
    const slow = clock.setTime.bind(clock);
    let first = true;
    clock.setTime = async (time: Date) => {
      if (first) {
        first = false;
        await new Promise((r) => setTimeout(r, 400));
      }
      return slow(time);
    };
    const t = ahead(3600);
    const [a, b] = await Promise.all([plugin.setSystemTime(t.toISOString()), plugin.setSystemTime(t.toISOString())]);
    expect([a, b]).toEqual([true, true]);
    const waited = Date.parse(clock.set[1]!) - t.getTime();
    expect(waited).toBeGreaterThanOrEqual(380);
    expect(waited).toBeLessThan(2000);
  });

  it('does not touch the clock for a request whose safe reply the core already sent', async () => {
    const { ctx, clock, plugin } = setup();
    const gaveUp = new AbortController();
    gaveUp.abort();
    expect(await plugin.setSystemTime(ahead(60).toISOString(), { signal: gaveUp.signal, commit: () => false })).toBe(false);
    expect(await plugin.setSystemTime(ahead(60).toISOString(), { signal: new AbortController().signal, commit: () => false })).toBe(false);
    expect(clock.set).toEqual([]);
    expect(ctx.lines.filter((l) => /clock left alone/.test(l.msg ?? ''))).toHaveLength(2);
    expect(await plugin.setSystemTime(ahead(60).toISOString(), { signal: new AbortController().signal, commit: () => true })).toBe(true);
    expect(clock.set).toHaveLength(1);
  });

  it('replies false without touching the clock for bad or extreme times', async () => {
    const { ctx, clock, plugin } = setup();
    const far = new Date(Date.now() + 21 * 365.25 * 86_400_000).toISOString();
    for (const bad of ['2024-12-31T23:59:59Z', '1970-01-01T00:00:00Z', far, '2026-13-01T00:00:00Z', 'now', 42, null]) {
      expect(await plugin.setSystemTime(bad), String(bad)).toBe(false);
    }
    expect(clock.set).toEqual([]);
    expect(ctx.lines.filter((l) => l.level === 'warn' && /^set_system_time refused/.test(l.msg ?? ''))).toHaveLength(7);
  });

  it('honours notBefore and maxAheadS options', async () => {
    const { clock, plugin } = setup({ notBefore: '2030-01-01T00:00:00Z', maxAheadS: 100 * 365 * 86_400 });
    expect(await plugin.setSystemTime('2029-12-31T23:59:59Z')).toBe(false);
    expect(await plugin.setSystemTime('2030-01-01T00:00:00Z')).toBe(true);
    expect(clock.set).toEqual(['2030-01-01T00:00:00.000Z']);
  });

  it('refuses a notBefore that is not a time at construction', () => {
    expect(() => setup({ notBefore: 'yesterday' })).toThrow(/notBefore is not an RFC 3339 time/);
  });

  it('skips changes below minStepS and replies true', async () => {
    const { clock, plugin } = setup({ minStepS: 5 });
    expect(await plugin.setSystemTime(ahead(3).toISOString())).toBe(true);
    expect(await plugin.setSystemTime(ahead(-3).toISOString())).toBe(true);
    expect(clock.set).toEqual([]);
    expect(await plugin.setSystemTime(ahead(-10).toISOString())).toBe(true);
    expect(clock.set).toHaveLength(1);
  });

  it('uses the adapter clock for the step when it has one', async () => {
    const { clock, plugin } = setup();
    const shifted = ahead(7200);
    clock.now = () => new Date(shifted.getTime());
    expect(await plugin.setSystemTime(shifted.toISOString())).toBe(true);
    expect(clock.set).toEqual([]);
  });

  it('skips when NTP is synchronised only if configured', async () => {
    const off = setup();
    off.clock.ntp = true;
    expect(await off.plugin.setSystemTime(ahead(60).toISOString())).toBe(true);
    expect(off.clock.set).toHaveLength(1);

    const on = setup({ skipWhenNtpSynchronized: true });
    on.clock.ntp = true;
    expect(await on.plugin.setSystemTime(ahead(60).toISOString())).toBe(true);
    expect(on.clock.set).toEqual([]);
    on.clock.ntp = undefined;
    expect(await on.plugin.setSystemTime(ahead(60).toISOString())).toBe(true);
    expect(on.clock.set).toHaveLength(1);
  });

  it('replies false and logs when the adapter fails', async () => {
    const { ctx, clock, plugin } = setup();
    clock.fail = new Error('timedatectl set-time exited with code 1: Access denied');
    expect(await plugin.setSystemTime(ahead(60).toISOString())).toBe(false);
    expect(ctx.lines.some((l) => l.level === 'error' && /Access denied/.test(l.msg ?? ''))).toBe(true);
  });
});
