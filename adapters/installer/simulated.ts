/**
 * `simulated` installer: an A/B system made of two files, for the embedded default and development.
 *
 * Config: `{ "type": "simulated", "rebootRequired": true, "failInstall": false, "installDelayMs": 0 }`
 *
 * Files under `<stateDir>/adapters/simulated-installer/`: `slot-a`, `slot-b` (image copies) and
 * `state.json` (`booted`, `primary`, per-slot `good`, and `bootId`).
 *
 * The simulated "reboot" is the daemon starting again: the first install or confirm of an adapter
 * instance (one per daemon start) "boots" the primary slot and draws a new `bootId`; merely
 * creating the adapter (check-config, doctor) does not. `install()` copies the
 * image into the slot that is not booted and makes it primary; `confirm()` then checks that a new
 * boot happened since the install and that the written slot is the booted one, and marks it good.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { defineAdapter } from '../../core/api.js';
import type { AdapterDeps, ConfirmOutcome, InstallOutcome, InstallProgress, InstallerAdapter } from '../../core/api.js';

export type SimSlot = 'a' | 'b';

export interface SimulatedState {
  booted: SimSlot;
  primary: SimSlot;
  /** changes on every simulated boot (adapter creation) */
  bootId: string;
  slots: Record<SimSlot, { good: boolean; sha?: string; installedAt?: string; bytes?: number }>;
}

export interface SimulatedInstallerOptions {
  rebootRequired: boolean;
  failInstall: boolean;
  installDelayMs: number;
}

export const optionsSchema = {
  type: 'object',
  properties: {
    rebootRequired: { type: 'boolean', default: true, description: 'report reboot-required (true) or installed at once' },
    failInstall: { type: 'boolean', default: false, description: 'make every install fail (demos)' },
    installDelayMs: { type: 'integer', minimum: 0, default: 0, description: 'spread the install over this long (demos)' },
  },
} as const;

export const SIMULATED_DIR = path.join('adapters', 'simulated-installer');

const other = (slot: SimSlot): SimSlot => (slot === 'a' ? 'b' : 'a');
const isSlot = (v: unknown): v is SimSlot => v === 'a' || v === 'b';

export class SimulatedInstaller implements InstallerAdapter {
  readonly type = 'simulated';
  readonly dir: string;

  constructor(
    private readonly options: SimulatedInstallerOptions,
    private readonly deps: AdapterDeps,
  ) {
    this.dir = path.join(deps.stateDir, SIMULATED_DIR);
  }

  slotPath(slot: SimSlot): string {
    return path.join(this.dir, `slot-${slot}`);
  }

  #booting: Promise<SimulatedState> | undefined;

  /**
   * Boots once per adapter instance, on first use: creating the adapter alone (check-config,
   * doctor) is not a boot, only a daemon that goes on to install or confirm is.
   */
  ensureBooted(): Promise<SimulatedState> {
    this.#booting ??= this.boot();
    return this.#booting;
  }

  /** The simulated boot: the primary slot becomes the booted one, with a new boot id. */
  async boot(): Promise<SimulatedState> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const previous = await this.readState();
    const state: SimulatedState = previous ?? {
      booted: 'a',
      primary: 'a',
      bootId: '',
      slots: { a: { good: true }, b: { good: false } },
    };
    // a primary that was never marked good gets one try; if that boot is not confirmed,
    // the next boot falls back to the other slot (as a bootloader's boot counter would)
    if (previous && state.booted === state.primary && !state.slots[state.primary].good) {
      this.deps.log.warn({ slot: state.primary }, 'simulated installer: unconfirmed slot, falling back');
      state.primary = other(state.primary);
    }
    state.booted = state.primary;
    state.bootId = randomUUID();
    await this.writeState(state);
    this.deps.log.info({ booted: state.booted }, 'simulated installer: booted slot');
    return state;
  }

  async install(
    file: string,
    { signal, onProgress }: { signal: AbortSignal; onProgress: (p: InstallProgress) => void },
  ): Promise<InstallOutcome> {
    const log = this.deps.log;
    await this.ensureBooted();
    const state = await this.readState();
    if (!state) return { result: 'failed', message: 'simulated installer state is missing' };
    if (this.options.failInstall) {
      log.warn('simulated installer: failing the install as configured (failInstall)');
      return { result: 'failed', message: 'simulated installation failure (failInstall)' };
    }
    const target = other(state.booted);
    const dest = this.slotPath(target);
    log.info({ file, slot: target }, 'simulated installer: writing image to slot');
    try {
      const total = (await fsp.stat(file)).size;
      let done = 0;
      let lastPct = -1;
      const report = (pct: number): void => {
        if (pct !== lastPct) {
          lastPct = pct;
          onProgress({ percent: pct, message: `Writing slot ${target}` });
        }
      };
      report(0);
      // the target is no longer bootable while it is being written
      state.slots[target] = { good: false };
      await this.writeState(state);
      await pipeline(
        fs.createReadStream(file),
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            done += chunk.length;
            if (total > 0) report(Math.floor((done * 99) / total));
            cb(null, chunk);
          },
        }),
        fs.createWriteStream(dest, { mode: 0o600 }),
        { signal },
      );
      if (this.options.installDelayMs > 0) {
        const steps = 4;
        for (let i = 1; i <= steps; i++) {
          await delay(this.options.installDelayMs / steps, undefined, { signal });
          report(Math.min(99, 90 + i * 2));
        }
      }
      report(100);
    } catch (err) {
      const aborted = signal.aborted;
      const message = aborted ? 'installation aborted' : `cannot write slot ${target}: ${(err as Error).message}`;
      log.warn(`simulated installer: ${message}`);
      return { result: 'failed', message };
    }
    const now = await this.readState();
    const next: SimulatedState = now ?? state;
    next.slots[target] = { good: false, installedAt: new Date().toISOString() };
    if (this.options.rebootRequired) {
      next.primary = target;
      await this.writeState(next);
      log.info({ slot: target }, 'simulated installer: slot written and made primary, reboot required');
      return { result: 'reboot-required', confirmData: { targetSlot: target, bootId: next.bootId } };
    }
    // no reboot: the new image is active at once
    next.primary = target;
    next.booted = target;
    next.slots[target].good = true;
    await this.writeState(next);
    log.info({ slot: target }, 'simulated installer: slot written and active');
    return { result: 'installed' };
  }

  async confirm(confirmData: Record<string, unknown>): Promise<ConfirmOutcome> {
    const log = this.deps.log;
    await this.ensureBooted();
    const state = await this.readState();
    const target = confirmData.targetSlot;
    if (!state || !isSlot(target)) {
      log.warn({ confirmData }, 'simulated installer: cannot confirm, state or target slot missing');
      return { result: 'failed', message: 'nothing to confirm: unknown target slot' };
    }
    if (confirmData.bootId === state.bootId) {
      log.warn('simulated installer: no restart happened since the install');
      return { result: 'failed', message: 'not restarted since the install' };
    }
    if (state.booted !== target) {
      const message = `booted slot ${state.booted} is not the installed slot ${target}`;
      log.warn(`simulated installer: ${message}`);
      return { result: 'failed', message };
    }
    state.slots[target].good = true;
    state.primary = target;
    await this.writeState(state);
    log.info({ slot: target }, 'simulated installer: booted into the new slot, marked good');
    return { result: 'installed' };
  }

  async readState(): Promise<SimulatedState | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(path.join(this.dir, 'state.json'), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const s = JSON.parse(text) as SimulatedState;
      if (isSlot(s.booted) && isSlot(s.primary) && s.slots?.a && s.slots?.b) return s;
    } catch {
      // fall through
    }
    this.deps.log.warn('simulated installer: state.json unreadable, starting from slot a');
    return undefined;
  }

  private async writeState(state: SimulatedState): Promise<void> {
    const file = path.join(this.dir, 'state.json');
    const tmp = `${file}.tmp-${process.pid}`;
    await fsp.writeFile(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
    await fsp.rename(tmp, file);
  }
}

export default defineAdapter({
  slot: 'installer',
  type: 'simulated',
  optionsSchema,
  async create(options, deps) {
    const adapter = new SimulatedInstaller(
      {
        rebootRequired: options.rebootRequired !== false,
        failInstall: options.failInstall === true,
        installDelayMs: typeof options.installDelayMs === 'number' ? options.installDelayMs : 0,
      },
      deps,
    );
    return adapter;
  },
});
