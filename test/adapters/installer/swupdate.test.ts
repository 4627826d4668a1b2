/**
 * The swupdate installer against the real SWUpdate 2022.12 CLI with signed .swu files
 * (test/helpers/swupdate.ts). Each test has its own fixture and TMPDIR, so they run concurrently
 * (SWUpdate spends about a second idle per run).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'vitest';
import swupdateModule, { swupdateVerdict } from '../../../adapters/installer/swupdate.js';
import type { InstallProgress, InstallerAdapter } from '../../../core/api.js';
import { makeSwupdate, type SwupdateFixture } from '../../helpers/swupdate.js';
import { makeDeps, writeScript } from './util.js';

/** A fixture removed when the test ends (the test context's hook: these tests run concurrently). */
async function fixture(ctx: TestContext): Promise<SwupdateFixture> {
  const swu = await makeSwupdate({ hardware: 'test-board:1.0' });
  ctx.onTestFinished(() => swu.stop());
  return swu;
}

async function setup(ctx: TestContext, options: Record<string, unknown> = {}) {
  const swu = await fixture(ctx);
  const deps = makeDeps(path.join(swu.dir, 'state'));
  const adapter = (await swupdateModule.create(
    { publicKey: swu.publicKey, hardware: swu.hardware, tmpDir: swu.tmpDir, ...options },
    deps,
  )) as InstallerAdapter;
  return { swu, adapter, deps };
}

async function install(adapter: InstallerAdapter, file: string, signal = new AbortController().signal) {
  const progress: InstallProgress[] = [];
  const outcome = await adapter.install(file, { signal, onProgress: (p) => progress.push(p) });
  return { outcome, progress };
}

const untouched = (swu: SwupdateFixture) => fs.readFileSync(swu.targetImage).every((b) => b === 0) && !fs.existsSync(swu.targetFile);

describe.concurrent('swupdate installer', () => {
  it('installs a signed .swu: raw image and file written, progress reported, reboot required', async (ctx) => {
    const { expect } = ctx;
    const { swu, adapter, deps } = await setup(ctx);
    const pkg = await swu.buildSwu({ version: '2.0.0' });
    const { outcome, progress } = await install(adapter, pkg.path);
    expect(outcome).toEqual({ result: 'reboot-required', confirmData: {} });
    expect(fs.readFileSync(swu.targetImage).subarray(0, pkg.image.length).equals(pkg.image)).toBe(true);
    expect(fs.readFileSync(swu.targetFile, 'utf8')).toBe('version=2.0.0\n');
    expect(progress).toEqual([
      { percent: 0, message: 'Software update started' },
      { message: 'Installation in progress' },
      { percent: 100, message: 'Software update successful' },
    ]);
    expect(deps.log.text()).toMatch(/image installed \(reboot-required\)/);
  });

  it('reports installed when no reboot is needed', async (ctx) => {
    const { expect } = ctx;
    const { swu, adapter } = await setup(ctx, { rebootRequired: false });
    const { outcome } = await install(adapter, (await swu.buildSwu()).path);
    expect(outcome.result).toBe('installed');
  });

  it('rejects a corrupted .swu as verification-failed with the hash message, writing nothing', async (ctx) => {
    const { expect } = ctx;
    const { swu, adapter, deps } = await setup(ctx);
    const { outcome } = await install(adapter, (await swu.buildSwu({ corrupt: true })).path);
    expect(outcome.result).toBe('verification-failed');
    expect(outcome.message).toMatch(/^HASH mismatch : [0-9a-f]{64} <--> [0-9a-f]{64}$/);
    expect(untouched(swu)).toBe(true);
    expect(deps.log.lines.some((l) => l.level === 'warn' && /HASH mismatch/.test(l.msg ?? ''))).toBe(true);
  });

  it('rejects a wrong hardware revision as failed', async (ctx) => {
    const { expect } = ctx;
    const { swu, adapter } = await setup(ctx);
    const { outcome } = await install(adapter, (await swu.buildSwu({ revisions: ['3.0'] })).path);
    expect(outcome).toEqual({ result: 'failed', message: 'SW not compatible with hardware' });
    expect(untouched(swu)).toBe(true);
  });

  it('rejects an edited sw-description and a foreign signer as verification-failed', async (ctx) => {
    const { expect } = ctx;
    const { swu, adapter } = await setup(ctx);
    const edited = await install(adapter, (await swu.buildSwu({ tamperDescription: true })).path);
    expect(edited.outcome).toEqual({ result: 'verification-failed', message: 'Signature verification failed' });
    const foreign = await install(adapter, (await swu.buildSwu({ untrusted: true })).path);
    expect(foreign.outcome).toEqual({ result: 'verification-failed', message: 'Authentication of all signatures failed' });
    expect(untouched(swu)).toBe(true);
  });

  it('rejects a file that is not a .swu, and a missing file', async (ctx) => {
    const { expect } = ctx;
    const { swu, adapter } = await setup(ctx);
    const junk = path.join(swu.dir, 'junk.swu');
    fs.writeFileSync(junk, Buffer.alloc(4096, 7));
    const { outcome } = await install(adapter, junk);
    expect(outcome.result).toBe('verification-failed');
    expect(outcome.message).toMatch(/CPIO Format not recognized/);
    const missing = await install(adapter, path.join(swu.dir, 'missing.swu'));
    expect(missing.outcome.result).not.toBe('reboot-required');
    expect(missing.outcome.message).toBeTruthy();
  });

  it('inspect() checks without writing: ok for a good image, the reason for a bad one', async (ctx) => {
    const { expect } = ctx;
    const { swu, adapter } = await setup(ctx);
    const signal = new AbortController().signal;
    expect(await adapter.inspect!((await swu.buildSwu()).path, signal)).toEqual({ ok: true });
    expect(untouched(swu)).toBe(true);
    const bad = await adapter.inspect!((await swu.buildSwu({ corrupt: true })).path, signal);
    expect(bad.ok).toBe(false);
    expect(bad.message).toMatch(/HASH mismatch/);
    const hw = await adapter.inspect!((await swu.buildSwu({ revisions: ['9.9'] })).path, signal);
    expect(hw).toEqual({ ok: false, message: 'SW not compatible with hardware' });
  });

  it('abort ends swupdate and reports failed', async (ctx) => {
    const { expect } = ctx;
    const { swu, adapter } = await setup(ctx);
    const pkg = await swu.buildSwu();
    const ac = new AbortController();
    const outcome = await adapter.install(pkg.path, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.percent === 0) ac.abort();
      },
    });
    expect(outcome).toEqual({ result: 'failed', message: 'installation aborted' });
  });

  it('keeps its TMPDIR under the state dir by default', async (ctx) => {
    const { expect } = ctx;
    const swu = await fixture(ctx);
    const stateDir = path.join(swu.dir, 'state');
    const adapter = (await swupdateModule.create({ publicKey: swu.publicKey, hardware: swu.hardware }, makeDeps(stateDir))) as InstallerAdapter;
    expect((await install(adapter, (await swu.buildSwu()).path)).outcome.result).toBe('reboot-required');
    expect(fs.statSync(path.join(stateDir, 'adapters', 'swupdate', 'tmp')).isDirectory()).toBe(true);
  });

  it('confirm() runs confirmCommand after the reboot, or reports installed without one', async (ctx) => {
    const { expect } = ctx;
    const dir = (await fixture(ctx)).dir;
    const ok = writeScript(dir, 'ok.sh', 'exit 0');
    const bad = writeScript(dir, 'bad.sh', 'echo "rootfs is still the old one"; exit 1');
    const deps = makeDeps(dir);
    const mk = async (o: Record<string, unknown>) => (await swupdateModule.create(o, deps)) as InstallerAdapter;
    expect(await (await mk({ confirmCommand: [ok] })).confirm({})).toEqual({ result: 'installed' });
    expect(await (await mk({ confirmCommand: [bad] })).confirm({})).toEqual({
      result: 'failed',
      message: 'confirm command failed (exit code 1): rootfs is still the old one',
    });
    expect(await (await mk({})).confirm({})).toEqual({ result: 'installed' });
  });
});

describe('swupdate verdict', () => {
  // SWUpdate 2022.12 exits 1 now and then after a successful install (seen in about 1 run in 5),
  // with exactly this output; the verdict must come from the output.
  const success = [
    'SWUpdate v', '', 'Licensed under GPLv2. See source distribution for detailed copyright notices.', '',
    '[INFO ] : SWUPDATE started :  Software Update started !',
    '[INFO ] : SWUPDATE running :  Installation in progress',
    '[INFO ] : SWUPDATE successful ! SWUPDATE successful !',
    '[INFO ] : No SWUPDATE running :  Waiting for requests...',
  ];
  it('takes success from the output even with exit code 1', ({ expect }) => {
    expect(swupdateVerdict({ exitCode: 1, lines: success, aborted: false, timedOut: false })).toEqual({ ok: true });
  });
  it('never calls an exit code 0 without a success line a success', ({ expect }) => {
    const v = swupdateVerdict({ exitCode: 0, lines: success.slice(0, 5), aborted: false, timedOut: false });
    expect(v.ok).toBe(false);
  });
});
