import { describe, expect, it } from 'vitest';
import type { PowerAdapter } from '../../core/api.js';
import ResetPlugin from '../../plugins/reset/index.js';
import { fakeContext, withDefaults } from './fake-context.js';

class RecordingPower implements PowerAdapter {
  readonly type = 'recording';
  calls: string[] = [];
  fail: Error | undefined;
  gate: Promise<void> | undefined;
  async reboot() {
    this.calls.push('reboot');
    await this.gate;
    if (this.fail) throw this.fail;
  }
  async restartApplication() {
    this.calls.push('restart');
    await this.gate;
    if (this.fail) throw this.fail;
  }
}

function setup(options: Record<string, unknown> = {}) {
  const ctx = fakeContext('reset', withDefaults(ResetPlugin.optionsSchema, options));
  const power = new RecordingPower();
  const plugin = new ResetPlugin(ctx, power);
  plugin.start();
  return { ctx, power, plugin };
}

describe('reset plugin (unit)', () => {
  it('maps Soft, Hard and NotSpecified (default Hard) and records the boot reason first', async () => {
    for (const [type, scheduled, call, reason] of [
      ['Soft', false, 'restart', 'RemoteReset'],
      ['Hard', false, 'reboot', 'RemoteReset'],
      ['NotSpecified', true, 'reboot', 'ScheduledReset'],
      [undefined, undefined, 'reboot', 'RemoteReset'],
    ] as const) {
      const { ctx, power, plugin } = setup();
      let reasonAtCall: string | undefined;
      power.reboot = power.restartApplication = async () => {
        power.calls.push(call);
        reasonAtCall = ctx.bootReason.record_?.reason;
      };
      await plugin.reset({ type, scheduled });
      expect(power.calls, `${type}`).toEqual([call]);
      expect(reasonAtCall).toBe(reason);
    }
  });

  it('NotSpecified restarts EVerest when configured Soft', async () => {
    const { power, plugin } = setup({ notSpecified: 'Soft' });
    await plugin.reset({ type: 'NotSpecified', scheduled: false });
    expect(power.calls).toEqual(['restart']);
  });

  it('ignores invalid reset messages and logs them', async () => {
    const { ctx, power, plugin } = setup();
    for (const bad of [null, 'Hard', [], { type: 'Warm' }, { type: 'Hard', scheduled: 'yes' }]) await plugin.reset(bad);
    expect(power.calls).toEqual([]);
    expect(ctx.bootReason.record_).toBeUndefined();
    expect(ctx.lines.filter((l) => l.level === 'warn' && /^reset ignored/.test(l.msg ?? ''))).toHaveLength(5);
  });

  it('does not run a reset twice while one is under way', async () => {
    const { ctx, power, plugin } = setup();
    let open!: () => void;
    power.gate = new Promise((r) => (open = r));
    const first = plugin.reset({ type: 'Soft', scheduled: false });
    await plugin.reset({ type: 'Hard', scheduled: false });
    open();
    await first;
    expect(power.calls).toEqual(['restart']);
    expect(ctx.lines.some((l) => l.msg === 'reset ignored: a reset is already under way')).toBe(true);
    // a Soft reset is over once EVerest restarted: the next one runs
    await plugin.reset({ type: 'Soft', scheduled: false });
    expect(power.calls).toEqual(['restart', 'restart']);
  });

  it('after a Hard reset, drops resets until EVerest restarts', async () => {
    const { ctx, power, plugin } = setup();
    await plugin.reset({ type: 'Hard' });
    await plugin.reset({ type: 'Hard' });
    expect(power.calls).toEqual(['reboot']);
    ctx.everest.restart();
    await plugin.reset({ type: 'Hard' });
    expect(power.calls).toEqual(['reboot', 'reboot']);
    plugin.stop();
  });

  it('a failed reset withdraws its boot reason, keeps another plugin\'s, and allows a retry', async () => {
    const { ctx, power, plugin } = setup();
    power.fail = new Error('systemctl reboot exited with code 1: denied');
    await plugin.reset({ type: 'Hard', scheduled: false });
    expect(ctx.bootReason.record_).toBeUndefined();
    expect(ctx.lines.some((l) => l.level === 'error' && /denied/.test(l.msg ?? ''))).toBe(true);
    await ctx.bootReason.record('FirmwareUpdate');
    await plugin.reset({ type: 'Hard', scheduled: false });
    expect(ctx.bootReason.record_?.reason).toBe('FirmwareUpdate');
    expect(power.calls).toEqual(['reboot', 'reboot']);
  });

  it('waits delayS before acting, and a stop cancels the delayed reset', async () => {
    const { power, plugin } = setup({ delayS: 0.3 });
    const t0 = Date.now();
    await plugin.reset({ type: 'Soft' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(power.calls).toEqual(['restart']);

    const s = setup({ delayS: 30 });
    const pending = s.plugin.reset({ type: 'Hard' });
    s.plugin.stop();
    await pending;
    expect(s.power.calls).toEqual([]);
    expect(s.ctx.bootReason.record_).toBeUndefined();
  });

  it('is_reset_allowed: true unless vetoed; false for unknown types', () => {
    const { ctx, plugin } = setup();
    expect(plugin.isResetAllowed('NotSpecified')).toBe(true);
    expect(plugin.isResetAllowed('Warm')).toBe(false);
    expect(plugin.isResetAllowed(42)).toBe(false);
    const off = ctx.resetVetoes.register('firmware-update', (t) => (t === 'Hard' || t === 'NotSpecified' ? 'installing firmware' : undefined));
    expect(plugin.isResetAllowed('Hard')).toBe(false);
    expect(plugin.isResetAllowed('Soft')).toBe(true);
    expect(ctx.lines.some((l) => /refused: firmware-update: installing firmware/.test(l.msg ?? ''))).toBe(true);
    off();
    expect(plugin.isResetAllowed('Hard')).toBe(true);
  });
});
