import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import simulatedModule, { SimulatedInstaller } from '../../../adapters/installer/simulated.js';
import type { InstallProgress } from '../../../core/api.js';
import { makeDeps, tempDir } from './util.js';

/** A daemon start that uses the adapter: the simulated boot (once per adapter instance). */
async function boot(stateDir: string, options: Record<string, unknown> = {}) {
  const deps = makeDeps(stateDir);
  const adapter = (await simulatedModule.create(options, deps)) as SimulatedInstaller;
  await adapter.ensureBooted();
  return { adapter, deps };
}

function image(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text.repeat(1000));
  return file;
}

const noAbort = () => new AbortController().signal;

describe('simulated installer', () => {
  it('writes the other slot, needs a reboot, and confirms after the daemon restarted into it', async () => {
    const stateDir = tempDir('sim-state-');
    const files = tempDir('sim-files-');
    const first = await boot(stateDir);
    const slotDir = path.join(stateDir, 'adapters', 'simulated-installer');
    expect(JSON.parse(fs.readFileSync(path.join(slotDir, 'state.json'), 'utf8'))).toMatchObject({ booted: 'a', primary: 'a' });

    const progress: InstallProgress[] = [];
    const fw2 = image(files, 'fw2.bin', 'version 2 ');
    const outcome = await first.adapter.install(fw2, { signal: noAbort(), onProgress: (p) => progress.push(p) });
    expect(outcome.result).toBe('reboot-required');
    expect(outcome.confirmData?.targetSlot).toBe('b');
    expect(fs.readFileSync(path.join(slotDir, 'slot-b'))).toEqual(fs.readFileSync(fw2));
    expect(progress[0]?.percent).toBe(0);
    expect(progress.at(-1)?.percent).toBe(100);

    // confirm without a restart: nothing was rebooted yet
    expect((await first.adapter.confirm(outcome.confirmData!)).result).toBe('failed');

    const second = await boot(stateDir);
    expect(await second.adapter.confirm(outcome.confirmData!)).toEqual({ result: 'installed' });
    expect(await second.adapter.readState()).toMatchObject({ booted: 'b', primary: 'b', slots: { b: { good: true } } });

    // the next image alternates back to slot a
    const fw3 = image(files, 'fw3.bin', 'version 3 ');
    const again = await second.adapter.install(fw3, { signal: noAbort(), onProgress: () => {} });
    expect(again.confirmData?.targetSlot).toBe('a');
    expect(fs.readFileSync(path.join(slotDir, 'slot-a'))).toEqual(fs.readFileSync(fw3));
    const third = await boot(stateDir);
    expect((await third.adapter.confirm(again.confirmData!)).result).toBe('installed');
    expect(third.deps.log.text()).toMatch(/booted into the new slot/);
  });

  it('falls back to the old slot when the new one was not confirmed, and confirm then fails', async () => {
    const stateDir = tempDir('sim-state-');
    const fw = image(tempDir(), 'fw.bin', 'x');
    const first = await boot(stateDir);
    const outcome = await first.adapter.install(fw, { signal: noAbort(), onProgress: () => {} });
    await boot(stateDir); // booted b, but nobody confirmed it
    const third = await boot(stateDir); // unconfirmed: the "bootloader" goes back to a
    expect(await third.adapter.readState()).toMatchObject({ booted: 'a', primary: 'a' });
    const confirm = await third.adapter.confirm(outcome.confirmData!);
    expect(confirm.result).toBe('failed');
    expect(confirm.message).toMatch(/booted slot a is not the installed slot b/);
  });

  it('installs at once when rebootRequired is false', async () => {
    const stateDir = tempDir('sim-state-');
    const { adapter } = await boot(stateDir, { rebootRequired: false });
    const outcome = await adapter.install(image(tempDir(), 'fw.bin', 'y'), { signal: noAbort(), onProgress: () => {} });
    expect(outcome.result).toBe('installed');
    expect(await adapter.readState()).toMatchObject({ booted: 'b', primary: 'b' });
  });

  it('fails every install when failInstall is set, and a missing image fails cleanly', async () => {
    const stateDir = tempDir('sim-state-');
    const failing = await boot(stateDir, { failInstall: true });
    const outcome = await failing.adapter.install(image(tempDir(), 'fw.bin', 'z'), { signal: noAbort(), onProgress: () => {} });
    expect(outcome).toEqual({ result: 'failed', message: 'simulated installation failure (failInstall)' });
    const normal = await boot(stateDir);
    const missing = await normal.adapter.install('/nonexistent/fw.bin', { signal: noAbort(), onProgress: () => {} });
    expect(missing.result).toBe('failed');
    expect(missing.message).toMatch(/cannot write slot b/);
    expect(await normal.adapter.readState()).toMatchObject({ booted: 'a', primary: 'a' });
  });

  it('stops on abort without switching the primary slot', async () => {
    const stateDir = tempDir('sim-state-');
    const { adapter } = await boot(stateDir, { installDelayMs: 5000 });
    const ac = new AbortController();
    const done = adapter.install(image(tempDir(), 'fw.bin', 'w'), {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.percent === 99) ac.abort();
      },
    });
    expect(await done).toEqual({ result: 'failed', message: 'installation aborted' });
    expect(await adapter.readState()).toMatchObject({ booted: 'a', primary: 'a' });
  });

  it('creating the adapter alone (check-config, doctor) is not a boot', async () => {
    const stateDir = tempDir('sim-state-');
    const fw = image(tempDir(), 'fw.bin', 'q');
    const first = await boot(stateDir);
    const outcome = await first.adapter.install(fw, { signal: noAbort(), onProgress: () => {} });
    // e.g. `everest-system check-config` on the board between install and reboot
    await simulatedModule.create({}, makeDeps(stateDir));
    await simulatedModule.create({}, makeDeps(stateDir));
    expect(await first.adapter.readState()).toMatchObject({ booted: 'a', primary: 'b' });
    const second = await boot(stateDir);
    expect(await second.adapter.confirm(outcome.confirmData!)).toEqual({ result: 'installed' });
  });

  it('starts over from slot a when state.json is unreadable', async () => {
    const stateDir = tempDir('sim-state-');
    const dir = path.join(stateDir, 'adapters', 'simulated-installer');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'state.json'), '{not json');
    const { adapter, deps } = await boot(stateDir);
    expect(await adapter.readState()).toMatchObject({ booted: 'a' });
    expect(deps.log.text()).toMatch(/unreadable/);
  });
});
