import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PersistedBootReason } from '../../core/bootReason.js';
import BootReasonPlugin from '../../plugins/boot-reason/index.js';
import { makeTempDir } from '../adapters/power/stub.js';
import { FakeBootReason, fakeContext, MemoryState, withDefaults } from '../reset/fake-context.js';

let tmp: ReturnType<typeof makeTempDir>;
let bootIdPath: string;
let watchdogGlob: string;
beforeEach(() => {
  tmp = makeTempDir();
  bootIdPath = path.join(tmp.dir, 'boot_id');
  watchdogGlob = path.join(tmp.dir, 'watchdog', '*', 'bootstatus');
  fs.writeFileSync(bootIdPath, 'boot-a\n');
});
afterEach(() => tmp.cleanup());

function run(state = new MemoryState(), bootReason = new FakeBootReason()) {
  const ctx = fakeContext('boot-reason', withDefaults(BootReasonPlugin.optionsSchema, { bootIdPath, watchdogGlob }), { state, bootReason });
  const plugin = new BootReasonPlugin(ctx);
  return { ctx, plugin, state, bootReason };
}

function watchdog(name: string, value: string) {
  fs.mkdirSync(path.join(tmp.dir, 'watchdog', name), { recursive: true });
  fs.writeFileSync(path.join(tmp.dir, 'watchdog', name, 'bootstatus'), value);
}

describe('boot-reason plugin (unit)', () => {
  it('PowerUp on a first start, ApplicationReset when EVerest asks again', async () => {
    const { plugin } = run();
    await plugin.start();
    expect(await plugin.getBootReason()).toBe('PowerUp');
    expect(await plugin.getBootReason()).toBe('ApplicationReset');
  });

  it('a repeated question is answered at once, a reason recorded meanwhile still reaches the next one', async () => {
    const base = fakeContext('boot-reason', withDefaults(BootReasonPlugin.optionsSchema, { bootIdPath, watchdogGlob }));
    // the core's store, which knows when nothing is recorded
    const store = new PersistedBootReason(new MemoryState(), base.log, () => 'boot-a');
    const plugin = new BootReasonPlugin({ ...base, bootReason: store });
    await plugin.start();
    const ask = () => plugin.handlers().get_boot_reason!(undefined, { topic: 't', receivedAt: new Date(), signal: new AbortController().signal, commit: () => true });
    expect(await ask()).toBe('PowerUp');
    // told, nothing recorded: the answer itself, not a promise of it
    expect(ask()).toBe('ApplicationReset');
    await store.record('RemoteReset');
    const next = ask();
    expect(next).toBeInstanceOf(Promise);
    expect(await next).toBe('RemoteReset');
    expect(ask()).toBe('ApplicationReset');
  });

  it('reports a recorded reason once, then detects', async () => {
    const bootReason = new FakeBootReason();
    await bootReason.record('ScheduledReset');
    const { plugin } = run(undefined, bootReason);
    await plugin.start();
    expect(await plugin.getBootReason()).toBe('ScheduledReset');
    expect(bootReason.record_).toBeUndefined();
    expect(await plugin.getBootReason()).toBe('ApplicationReset');
  });

  it('keeps a recorded reason when the core already sent Unknown for the request', async () => {
    const bootReason = new FakeBootReason();
    const { plugin } = run(new MemoryState(), bootReason);
    await bootReason.record('RemoteReset');
    const gaveUp = new AbortController();
    gaveUp.abort();
    expect(await plugin.getBootReason({ signal: gaveUp.signal, commit: () => false })).toBe('Unknown');
    expect(bootReason.record_?.reason).toBe('RemoteReset');
    expect(await plugin.getBootReason({ signal: new AbortController().signal, commit: () => true })).toBe('RemoteReset');
    expect(bootReason.record_).toBeUndefined();
  });

  it('across daemon runs: same boot id -> ApplicationReset, new boot id -> PowerUp', async () => {
    const state = new MemoryState();
    const first = run(state);
    await first.plugin.start();
    expect(await first.plugin.getBootReason()).toBe('PowerUp');
    const second = run(state);
    await second.plugin.start();
    expect(await second.plugin.getBootReason()).toBe('ApplicationReset');
    fs.writeFileSync(bootIdPath, 'boot-b\n');
    const third = run(state);
    await third.plugin.start();
    expect(await third.plugin.getBootReason()).toBe('PowerUp');
  });

  it('a daemon restart before EVerest asked still reports the boot', async () => {
    const state = new MemoryState();
    await run(state).plugin.start();
    const again = run(state);
    await again.plugin.start();
    expect(await again.plugin.getBootReason()).toBe('PowerUp');
  });

  it('ApplicationReset after a heartbeat restart seen by this process', async () => {
    const { ctx, plugin } = run();
    await plugin.start();
    ctx.everest.restart();
    expect(await plugin.getBootReason()).toBe('ApplicationReset');
  });

  it('Watchdog when a bootstatus is non-zero on a new boot', async () => {
    watchdog('watchdog0', '0\n');
    watchdog('watchdog1', '32\n');
    const { plugin } = run();
    await plugin.start();
    expect(await plugin.getBootReason()).toBe('Watchdog');
    expect(await plugin.getBootReason()).toBe('ApplicationReset');
  });

  it('zero bootstatus is not a watchdog reset', async () => {
    watchdog('watchdog0', '0\n');
    const { plugin } = run();
    await plugin.start();
    expect(await plugin.getBootReason()).toBe('PowerUp');
  });

  it('Unknown when the boot id cannot be read and nothing else is known', async () => {
    fs.rmSync(bootIdPath);
    const { plugin, ctx } = run();
    await plugin.start();
    expect(await plugin.getBootReason()).toBe('Unknown');
    expect(ctx.lines.some((l) => l.level === 'warn' && /cannot read the kernel boot id/.test(l.msg ?? ''))).toBe(true);
  });
});
