/**
 * The rauc installer against a real RAUC 1.8 service on a private D-Bus (test/helpers/rauc.ts).
 * Installs need root and loop devices; inspect and confirm do not.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import raucModule from '../../../adapters/installer/rauc.js';
import type { InstallProgress, InstallerAdapter } from '../../../core/api.js';
import { makePki, raucInstallSkipReason, startRauc, type Bundle, type RaucFixture } from '../../helpers/rauc.js';
import { makeDeps, tempDir, writeScript } from './util.js';

const skipInstall = raucInstallSkipReason();
if (skipInstall) console.warn(`skipping RAUC install tests: ${skipInstall}`);

async function adapterFor(rauc: RaucFixture, options: Record<string, unknown> = {}, viaOption = false) {
  // viaOption: the bus address comes from the adapter's busAddress option, not the environment
  const deps = makeDeps(tempDir('rauc-state-'), viaOption ? { DBUS_SYSTEM_BUS_ADDRESS: undefined } : rauc.env);
  const adapter = (await raucModule.create(
    { confPath: rauc.confPath, ...(viaOption ? { busAddress: rauc.busAddress } : {}), ...options },
    deps,
  )) as InstallerAdapter;
  return { adapter, deps };
}

async function install(adapter: InstallerAdapter, file: string) {
  const progress: InstallProgress[] = [];
  const outcome = await adapter.install(file, { signal: new AbortController().signal, onProgress: (p) => progress.push(p) });
  return { outcome, progress };
}

const zeroes = (b: Buffer) => b.every((x) => x === 0);

describe('rauc installer: inspect (rauc info)', () => {
  let rauc: RaucFixture;
  let good: Bundle;
  beforeAll(async () => {
    rauc = await startRauc({ compatible: 'test-board' });
    good = await rauc.buildBundle({ version: '2.1.0' });
  });
  afterAll(async () => rauc?.stop());

  it('accepts a bundle signed for this board and returns its version', async () => {
    const { adapter, deps } = await adapterFor(rauc);
    expect(await adapter.inspect!(good.path, new AbortController().signal)).toEqual({ ok: true, version: '2.1.0' });
    expect(deps.log.text()).toMatch(/signature and compatible checked/);
  });

  it('rejects a tampered bundle, a foreign signer and another board, with the reason', async () => {
    const { adapter } = await adapterFor(rauc);
    const signal = new AbortController().signal;
    const tampered = await adapter.inspect!((await rauc.buildBundle({ tamper: 'payload' })).path, signal);
    expect(tampered.ok).toBe(false);
    expect(tampered.message).toMatch(/signature verification failed: .*verification failure/);
    const foreign = await adapter.inspect!((await rauc.buildBundle({ untrusted: true })).path, signal);
    expect(foreign).toMatchObject({ ok: false, message: expect.stringMatching(/unable to get local issuer certificate/) });
    const other = await adapter.inspect!((await rauc.buildBundle({ compatible: 'other-board' })).path, signal);
    expect(other).toMatchObject({ ok: false, message: "bundle is for 'other-board' but this system is 'test-board'" });
    const missing = await adapter.inspect!(path.join(rauc.dir, 'missing.raucb'), signal);
    expect(missing.ok).toBe(false);
    expect(missing.message).toMatch(/missing\.raucb/);
  });

  it('uses the configured keyring', async () => {
    // a keyring of another CA: the bundle's signer is not trusted
    const other = await makePki(tempDir(), 'other-vendor');
    const { adapter } = await adapterFor(rauc, { keyring: other.ca.cert });
    const r = await adapter.inspect!(good.path, new AbortController().signal);
    expect(r).toMatchObject({ ok: false, message: expect.stringMatching(/signature verification failed/) });
    // and the right one passes
    const right = await adapterFor(rauc, { keyring: rauc.keyringPath });
    expect((await right.adapter.inspect!(good.path, new AbortController().signal)).ok).toBe(true);
  });
});

describe('rauc installer: install and confirm', () => {
  let rauc: RaucFixture | undefined;
  afterEach(async () => {
    await rauc?.stop();
    rauc = undefined;
  });

  it.skipIf(!!skipInstall)('installs into slot B, maps progress, and commits B after the reboot', async () => {
    rauc = await startRauc();
    const bundle = await rauc.buildBundle({ version: '2.0.0' });
    const marker = path.join(rauc.dir, 'health-ran');
    const health = writeScript(tempDir(), 'health.sh', `echo ok > '${marker}'`);
    const { adapter, deps } = await adapterFor(rauc, { healthCheck: [health] }, true);
    const { outcome, progress } = await install(adapter, bundle.path);

    expect(outcome).toEqual({
      result: 'reboot-required',
      confirmData: { targetSlot: 'rootfs.1', bootname: 'B', bundleVersion: '2.0.0', previousBooted: 'A' },
    });
    expect(rauc.readSlot('B').subarray(0, bundle.imageSize).equals(bundle.image)).toBe(true);
    expect(zeroes(rauc.readSlot('A'))).toBe(true);
    const percents = progress.map((p) => p.percent!);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(progress).toContainEqual({ percent: 90, message: 'Copying image to rootfs.1' });
    expect(progress.at(-1)).toEqual({ percent: 100, message: 'Installing done.' });
    expect(deps.log.text()).toMatch(/installed into rootfs.1, reboot required/);
    expect((await rauc.status()).boot_primary).toBe('rootfs.1');

    expect(await rauc.reboot()).toBe('B');
    const callsBefore = rauc.bootCalls().length;
    expect(await adapter.confirm(outcome.confirmData!)).toEqual({ result: 'installed' });
    expect(fs.existsSync(marker)).toBe(true);
    expect(rauc.bootCalls().slice(callsBefore)).toContain('set-state B good');
    const status = await rauc.status();
    expect(status.booted).toBe('B');
    expect(status.boot_primary).toBe('rootfs.1');
    expect(status.slots['rootfs.1']).toMatchObject({ state: 'booted', boot_status: 'good' });
  });

  it.skipIf(!!skipInstall)('reports an incompatible bundle as failed with RAUC\'s message and leaves slot B alone', async () => {
    rauc = await startRauc();
    const bundle = await rauc.buildBundle({ compatible: 'other-board' });
    const { adapter, deps } = await adapterFor(rauc);
    const { outcome } = await install(adapter, bundle.path);
    expect(outcome).toEqual({
      result: 'failed',
      message: "Installation error: Compatible mismatch: Expected 'test-board' but bundle manifest has 'other-board'",
    });
    expect(zeroes(rauc.readSlot('B'))).toBe(true);
    expect(rauc.bootState().primary).toBe('A');
    expect(deps.log.lines.some((l) => l.level === 'warn' && /Compatible mismatch/.test(l.msg ?? ''))).toBe(true);
  });

  it.skipIf(!!skipInstall)('reports a tampered bundle and a foreign signer as verification-failed', async () => {
    rauc = await startRauc();
    const { adapter } = await adapterFor(rauc);
    const tampered = await install(adapter, (await rauc.buildBundle({ tamper: 'payload' })).path);
    expect(tampered.outcome.result).toBe('verification-failed');
    expect(tampered.outcome.message).toMatch(/^signature verification failed: .*CMS routines::verification failure/);
    const foreign = await install(adapter, (await rauc.buildBundle({ untrusted: true })).path);
    expect(foreign.outcome).toEqual({
      result: 'verification-failed',
      message: 'signature verification failed: Verify error: unable to get local issuer certificate',
    });
    expect(zeroes(rauc.readSlot('B'))).toBe(true);
  });

  it('reports an unreachable RAUC service as failed, without throwing', async () => {
    const dir = tempDir();
    const deps = makeDeps(dir, { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${path.join(dir, 'no-such-bus')}` });
    const adapter = (await raucModule.create({}, deps)) as InstallerAdapter;
    const bundle = path.join(dir, 'update.raucb');
    fs.writeFileSync(bundle, 'not really a bundle');
    const { outcome } = await install(adapter, bundle);
    expect(outcome.result).toBe('failed');
    expect(outcome.message).toMatch(/D-Bus|connect/i);
    const confirm = await adapter.confirm({ targetSlot: 'rootfs.1', bootname: 'B' });
    expect(confirm.result).toBe('failed');
    expect(confirm.message).toMatch(/rauc status failed/);
  });

  // The confirm cases below need no install: the slot state RAUC checks is the booted slot.
  it('does not mark anything good when the board is still booted from A', async () => {
    rauc = await startRauc({ bootSlot: 'A' });
    const { adapter } = await adapterFor(rauc);
    const callsBefore = rauc.bootCalls().length;
    const outcome = await adapter.confirm({ targetSlot: 'rootfs.1', bootname: 'B', previousBooted: 'A' });
    expect(outcome).toEqual({ result: 'failed', message: 'booted slot A is not the installed slot B' });
    expect(rauc.bootCalls().slice(callsBefore).filter((c) => c.startsWith('set-'))).toEqual([]);
  });

  it('marks the new slot bad when still on A and markBadOnFailure is set', async () => {
    rauc = await startRauc({ bootSlot: 'A' });
    const { adapter } = await adapterFor(rauc, { markBadOnFailure: true });
    expect((await adapter.confirm({ targetSlot: 'rootfs.1', bootname: 'B' })).result).toBe('failed');
    expect(rauc.bootState().B).toBe('bad');
    expect(rauc.bootState().A).toBe('good');
  });

  it('fails and does not mark good when the health check fails; with markBadOnFailure the bootloader falls back', async () => {
    rauc = await startRauc({ bootSlot: 'B' });
    fs.writeFileSync(path.join(rauc.dir, 'boot', 'primary'), 'B\n');
    fs.writeFileSync(path.join(rauc.dir, 'boot', 'state.B'), 'good\n');
    const health = writeScript(tempDir(), 'health.sh', 'echo "charger controller not responding" >&2; exit 2');

    const plain = await adapterFor(rauc, { healthCheck: [health, '--quick'] });
    const callsBefore = rauc.bootCalls().length;
    const failed = await plain.adapter.confirm({ targetSlot: 'rootfs.1', bootname: 'B' });
    expect(failed).toEqual({ result: 'failed', message: 'health check failed (exit code 2): charger controller not responding' });
    expect(rauc.bootCalls().slice(callsBefore).filter((c) => c.startsWith('set-'))).toEqual([]);

    const marking = await adapterFor(rauc, { healthCheck: [health], markBadOnFailure: true });
    expect((await marking.adapter.confirm({ targetSlot: 'rootfs.1', bootname: 'B' })).result).toBe('failed');
    expect(rauc.bootState().B).toBe('bad');
    expect(await rauc.reboot()).toBe('A');
  });

  it('confirms without a health check when booted from the new slot', async () => {
    rauc = await startRauc({ bootSlot: 'B' });
    const { adapter, deps } = await adapterFor(rauc);
    expect(await adapter.confirm({ targetSlot: 'rootfs.1', bootname: 'B' })).toEqual({ result: 'installed' });
    expect(rauc.bootCalls()).toContain('set-state B good');
    expect(deps.log.text()).toMatch(/booted slot marked good/);
  });
});
