/**
 * `rauc` installer: installs a RAUC bundle into the inactive A/B slot through the `rauc` CLI
 * (a client of the RAUC service on the system D-Bus), and commits it after the reboot.
 *
 * Config: `{ "type": "rauc", "confPath": "/etc/rauc/system.conf", "keyring": "/etc/rauc/ca.pem",
 *            "healthCheck": ["/usr/bin/ocpp-selftest"], "markBadOnFailure": false,
 *            "busAddress": "unix:path=/run/dbus/system_bus_socket" }`
 *
 * - `inspect()`: `rauc info --output-format=json [--keyring]` checks the signature, and the bundle's
 *   `compatible` is compared with the system's (`rauc status`), before permission is asked.
 * - `install()`: `rauc install <bundle>`; its `NN% message` lines become progress. Success is
 *   `reboot-required` with confirmData `{ targetSlot, bootname, bundleVersion, previousBooted }`.
 *   A rejected signature or bundle is `verification-failed`, anything else `failed`, with RAUC's
 *   `LastError` as the message.
 * - `confirm()` (after the reboot): the booted slot must be the one written, the optional
 *   health check must exit 0, then `rauc status mark-good booted`. Otherwise `failed`, the slot is
 *   not marked good (and with `markBadOnFailure` marked bad), so the bootloader falls back.
 *
 * Aborting ends the CLI client; the RAUC service has no cancel and may finish the write.
 */
import { defineAdapter } from '../../core/api.js';
import type { AdapterDeps, ConfirmOutcome, InstallOutcome, InstallProgress, InstallerAdapter } from '../../core/api.js';
import { describeExit, runCommand, type RunResult } from './run.js';

export interface RaucInstallerOptions {
  confPath?: string;
  keyring?: string;
  healthCheck?: string[];
  healthCheckTimeoutS: number;
  markBadOnFailure: boolean;
  busAddress?: string;
}

export const optionsSchema = {
  type: 'object',
  properties: {
    confPath: { type: 'string', minLength: 1, description: 'RAUC system.conf (rauc --conf); default: RAUC\'s own' },
    keyring: { type: 'string', minLength: 1, description: 'keyring for rauc info (--keyring); default: the one in system.conf' },
    healthCheck: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      description: 'argv run after the reboot into the new slot; exit 0 means healthy',
    },
    healthCheckTimeoutS: { type: 'number', exclusiveMinimum: 0, default: 300 },
    markBadOnFailure: { type: 'boolean', default: false, description: 'mark the new slot bad when confirmation fails' },
    busAddress: { type: 'string', minLength: 1, description: 'D-Bus system bus address (DBUS_SYSTEM_BUS_ADDRESS) of the RAUC service' },
  },
} as const;

/** One slot of `rauc status --output-format=json`. */
export interface RaucSlot {
  name: string;
  class?: string;
  bootname?: string | null;
  state?: string;
  boot_status?: string;
  slot_status?: { bundle?: { compatible?: string | null; version?: string | null } };
}

export interface RaucSystemStatus {
  compatible?: string;
  booted?: string;
  boot_primary?: string | null;
  slots: RaucSlot[];
}

/** Parses `rauc status --output-format=json` (slots come as a list of one-key objects). */
export function parseRaucStatus(json: string): RaucSystemStatus {
  const raw = JSON.parse(json) as {
    compatible?: string;
    booted?: string;
    boot_primary?: string | null;
    slots?: Record<string, Omit<RaucSlot, 'name'>>[];
  };
  const slots: RaucSlot[] = [];
  for (const entry of raw.slots ?? []) {
    for (const [name, slot] of Object.entries(entry)) slots.push({ name, ...slot });
  }
  return { compatible: raw.compatible, booted: raw.booted, boot_primary: raw.boot_primary, slots };
}

const PROGRESS = /^\s*(\d{1,3})% (.*)$/;
const COPYING = /^\s*\d{1,3}% Copying image to (\S+?)(?: done\.| failed\.)?$/;
const LAST_ERROR = /^LastError: (.*)$/;
const VERIFICATION = /signature verification failed|invalid bundle format|verify error|verification failure|bundle.*(?:corrupt|hash|checksum)/i;

/** RAUC's own message from a failed command: LastError, else the last stderr line that is not chatter. */
function raucMessage(result: RunResult): string {
  const lines = result.lines.map((l) => l.trim()).filter((l) => l.length > 0);
  const lastError = lines.map((l) => LAST_ERROR.exec(l)?.[1]).filter((m): m is string => !!m).at(-1);
  if (lastError) return lastError;
  const useful = lines.filter(
    (l) => !l.startsWith('rauc-Message:') && !/^[0-9A-F]{8,}:error:/.test(l) && !PROGRESS.test(l) && l !== 'idle' && l !== 'installing',
  );
  return useful.at(-1) ?? describeExit(result);
}

export class RaucInstaller implements InstallerAdapter {
  readonly type = 'rauc';
  private readonly env: Readonly<Record<string, string | undefined>>;
  /** versions seen by inspect(), by bundle path */
  private readonly inspected = new Map<string, string>();

  constructor(
    private readonly options: RaucInstallerOptions,
    private readonly deps: AdapterDeps,
  ) {
    this.env = options.busAddress ? { ...deps.env, DBUS_SYSTEM_BUS_ADDRESS: options.busAddress } : deps.env;
  }

  private rauc(args: string[], opts: { signal?: AbortSignal; timeoutMs?: number; onLine?: (l: string) => void } = {}) {
    const conf = this.options.confPath ? [`--conf=${this.options.confPath}`] : [];
    return runCommand(['rauc', ...conf, ...args], { env: this.env, ...opts });
  }

  /** `rauc status`, or an error message. */
  async status(signal?: AbortSignal): Promise<RaucSystemStatus | string> {
    const r = await this.rauc(['status', '--detailed', '--output-format=json'], { signal, timeoutMs: 60_000 });
    if (r.exitCode !== 0) return `rauc status failed: ${raucMessage(r)}`;
    const json = r.lines.find((l) => l.trimStart().startsWith('{'));
    try {
      if (json) return parseRaucStatus(json);
    } catch {
      // fall through
    }
    return 'rauc status printed no readable JSON';
  }

  async inspect(file: string, signal: AbortSignal): Promise<{ ok: boolean; message?: string; version?: string }> {
    const log = this.deps.log;
    const keyring = this.options.keyring ? [`--keyring=${this.options.keyring}`] : [];
    const r = await this.rauc(['info', '--output-format=json', ...keyring, file], { signal, timeoutMs: 300_000 });
    if (r.aborted) return { ok: false, message: 'inspection aborted' };
    let info: { compatible?: string; version?: string } | undefined;
    if (r.exitCode === 0) {
      try {
        info = JSON.parse(r.lines.find((l) => l.trimStart().startsWith('{')) ?? '') as typeof info;
      } catch {
        info = undefined;
      }
    }
    if (!info) {
      const message = r.exitCode === 0 ? 'rauc info printed no readable JSON' : raucMessage(r);
      log.warn({ file }, `rauc: bundle rejected by rauc info: ${message}`);
      return { ok: false, message };
    }
    const system = await this.status(signal);
    if (typeof system === 'string') {
      log.warn(`rauc: cannot read the system's compatible (${system}); signature checked only`);
    } else if (system.compatible !== undefined && info.compatible !== system.compatible) {
      const message = `bundle is for '${info.compatible}' but this system is '${system.compatible}'`;
      log.warn({ file }, `rauc: bundle rejected: ${message}`);
      return { ok: false, message, version: info.version };
    }
    if (info.version) this.inspected.set(file, info.version);
    log.info({ file, version: info.version, compatible: info.compatible }, 'rauc: bundle signature and compatible checked');
    return { ok: true, version: info.version };
  }

  async install(
    file: string,
    { signal, onProgress }: { signal: AbortSignal; onProgress: (p: InstallProgress) => void },
  ): Promise<InstallOutcome> {
    const log = this.deps.log;
    const before = await this.status(signal);
    if (typeof before === 'string') log.warn(`rauc: before install: ${before}`);
    log.info({ file }, 'rauc: installing bundle');
    const copied: string[] = [];
    const r = await this.rauc(['install', file], {
      signal,
      onLine: (line) => {
        const copy = COPYING.exec(line);
        if (copy?.[1] && !copied.includes(copy[1])) copied.push(copy[1]);
        const m = PROGRESS.exec(line);
        if (m) onProgress({ percent: Math.min(100, Number(m[1])), message: m[2]!.trim() });
      },
    });
    if (r.aborted) {
      log.warn('rauc: install aborted; the RAUC service may still complete the slot write');
      return { result: 'failed', message: 'installation aborted' };
    }
    const succeeded = r.exitCode === 0 && r.lines.some((l) => /^Installing `.*` succeeded$/.test(l.trim()));
    if (!succeeded) {
      const message = raucMessage(r);
      const result = VERIFICATION.test(message) ? 'verification-failed' : 'failed';
      log.warn({ exit: describeExit(r) }, `rauc: install failed: ${message}`);
      return { result, message };
    }
    const after = await this.status();
    if (typeof after === 'string') log.warn(`rauc: after install: ${after}`);
    const slots = [
      ...(typeof after === 'string' ? [] : after.slots),
      ...(typeof before === 'string' ? [] : before.slots),
    ];
    const bootable = copied.filter((name) => slots.some((s) => s.name === name && s.bootname));
    const primary = typeof after === 'string' ? undefined : (after.boot_primary ?? undefined);
    const targetSlot = bootable[0] ?? primary ?? copied[0];
    const target = slots.find((s) => s.name === targetSlot);
    const confirmData: Record<string, unknown> = {
      targetSlot,
      bootname: target?.bootname ?? undefined,
      bundleVersion: target?.slot_status?.bundle?.version ?? this.inspected.get(file),
      previousBooted: typeof before === 'string' ? undefined : before.booted,
    };
    for (const k of Object.keys(confirmData)) if (confirmData[k] === undefined || confirmData[k] === null) delete confirmData[k];
    log.info(confirmData, `rauc: bundle installed into ${targetSlot ?? 'an unknown slot'}, reboot required`);
    return { result: 'reboot-required', confirmData };
  }

  async confirm(confirmData: Record<string, unknown>): Promise<ConfirmOutcome> {
    const log = this.deps.log;
    const status = await this.status();
    if (typeof status === 'string') {
      log.error(`rauc: cannot confirm the update: ${status}`);
      return { result: 'failed', message: status };
    }
    const bootname = typeof confirmData.bootname === 'string' ? confirmData.bootname : undefined;
    const targetSlot = typeof confirmData.targetSlot === 'string' ? confirmData.targetSlot : undefined;
    const previous = typeof confirmData.previousBooted === 'string' ? confirmData.previousBooted : undefined;
    const wrongSlot = bootname
      ? status.booted !== bootname && `booted slot ${status.booted} is not the installed slot ${bootname}`
      : previous
        ? status.booted === previous && `still booted from the previous slot ${previous}`
        : 'nothing to confirm: the installed slot is unknown';
    if (wrongSlot) {
      log.warn(`rauc: update not confirmed: ${wrongSlot}`);
      if (targetSlot) await this.markBad(targetSlot);
      return { result: 'failed', message: wrongSlot };
    }
    if (this.options.healthCheck) {
      log.info({ command: this.options.healthCheck[0] }, 'rauc: running health check');
      const h = await runCommand(this.options.healthCheck, { env: this.env, timeoutMs: this.options.healthCheckTimeoutS * 1000 });
      if (h.exitCode !== 0 || h.timedOut) {
        const out = h.lines.map((l) => l.trim()).filter(Boolean).slice(-3).join(' | ');
        const message = `health check failed (${describeExit(h)})${out ? `: ${out}` : ''}`;
        log.warn(`rauc: update not confirmed: ${message}`);
        await this.markBad('booted');
        return { result: 'failed', message };
      }
      log.info('rauc: health check passed');
    }
    const mark = await this.rauc(['status', 'mark-good', 'booted'], { timeoutMs: 60_000 });
    if (mark.exitCode !== 0) {
      const message = `rauc mark-good failed: ${raucMessage(mark)}`;
      log.error(`rauc: ${message}`);
      return { result: 'failed', message };
    }
    log.info({ slot: status.booted }, 'rauc: booted slot marked good');
    return { result: 'installed' };
  }

  private async markBad(slot: string): Promise<void> {
    if (!this.options.markBadOnFailure) return;
    const r = await this.rauc(['status', 'mark-bad', slot], { timeoutMs: 60_000 });
    if (r.exitCode === 0) this.deps.log.warn({ slot }, 'rauc: slot marked bad');
    else this.deps.log.error({ slot }, `rauc: mark-bad failed: ${raucMessage(r)}`);
  }
}

export default defineAdapter({
  slot: 'installer',
  type: 'rauc',
  optionsSchema,
  create(options, deps) {
    const str = (k: string) => (typeof options[k] === 'string' && options[k] !== '' ? (options[k] as string) : undefined);
    const healthCheck = options.healthCheck;
    if (healthCheck !== undefined && (!Array.isArray(healthCheck) || healthCheck.length === 0 || !healthCheck.every((a) => typeof a === 'string'))) {
      throw new Error('rauc installer: "healthCheck" must be a non-empty array of strings (argv)');
    }
    return new RaucInstaller(
      {
        confPath: str('confPath'),
        keyring: str('keyring'),
        healthCheck: healthCheck as string[] | undefined,
        healthCheckTimeoutS: typeof options.healthCheckTimeoutS === 'number' ? options.healthCheckTimeoutS : 300,
        markBadOnFailure: options.markBadOnFailure === true,
        busAddress: str('busAddress'),
      },
      deps,
    );
  },
});
