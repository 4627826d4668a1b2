/**
 * `swupdate` installer: installs a signed `.swu` with the one-shot SWUpdate CLI
 * (`swupdate -i <file> -k <publicKey> -H <hardware> [-e <selection>]`).
 *
 * Config: `{ "type": "swupdate", "publicKey": "/etc/swupdate/ca.pem", "hardware": "board:1.0",
 *            "selection": "stable,copy2", "rebootRequired": true,
 *            "confirmCommand": ["/usr/bin/fw-selftest"], "tmpDir": "/data/swupdate-tmp", "timeoutS": 1800 }`
 *
 * Why the CLI and not daemon + swupdate-client: a one-shot child needs no daemon lifecycle, is
 * ended with the rest of its process group on abort, and its own TMPDIR keeps its IPC sockets away
 * from a system SWUpdate daemon. `tmpDir` defaults to `<stateDir>/adapters/swupdate/tmp`
 * (SWUpdate extracts images there, so it needs room for the image).
 *
 * Result: SWUpdate 2022.12 sometimes exits 1 after a successful install, so the outcome is
 * read from its output (merged stdout and stderr): `SWUPDATE successful` and no `SWUPDATE failed`
 * line is success, the exit code only breaks a tie. A rejected image (hash mismatch, bad or
 * missing signature, not a .swu) is `verification-failed`; anything else (wrong hardware revision,
 * a handler failing) is `failed`, with SWUpdate's first error as the message.
 * `inspect()` runs the same command with `-c` (check only: signature, hashes, hardware; writes nothing).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { defineAdapter } from '../../core/api.js';
import type { AdapterDeps, ConfirmOutcome, InstallOutcome, InstallProgress, InstallerAdapter } from '../../core/api.js';
import { describeExit, runCommand, tail, type RunResult } from './run.js';

export interface SwupdateInstallerOptions {
  publicKey?: string;
  hardware?: string;
  selection?: string;
  rebootRequired: boolean;
  confirmCommand?: string[];
  tmpDir?: string;
  timeoutS?: number;
}

export const optionsSchema = {
  type: 'object',
  properties: {
    publicKey: { type: 'string', minLength: 1, description: 'CA/public key that signs the .swu (swupdate -k)' },
    hardware: { type: 'string', pattern: '^[^:]+:[^:]+$', description: 'board:revision (swupdate -H)' },
    selection: { type: 'string', minLength: 1, description: 'software set and mode, e.g. "stable,copy2" (swupdate -e)' },
    rebootRequired: { type: 'boolean', default: true, description: 'the new image becomes active after a reboot' },
    confirmCommand: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      description: 'argv run after the reboot; exit 0 means the new firmware is good',
    },
    tmpDir: { type: 'string', minLength: 1, description: 'TMPDIR for swupdate (extraction and IPC sockets)' },
    timeoutS: { type: 'number', exclusiveMinimum: 0, description: 'end swupdate after this long' },
  },
} as const;

/** `[INFO ] : SWUPDATE running :  Installation in progress` → level, text */
const LOG_LINE = /^\[(INFO |ERROR|WARN |DEBUG|TRACE)\]\s*:\s*(.*)$/;
const FAILED = /SWUPDATE failed \[\d+\]\s*(?:ERROR\s*:\s*)?(.*)$/;
const VERIFICATION =
  /HASH mismatch|Signature verification failed|Authentication of all signatures failed|signature.*(?:missing|not found)|Hash not set|CPIO Format not recognized|magic not found|description file name not the first/i;
const NOT_COMPATIBLE = /not compatible with hardware|HW compatibility not found|No downgrading allowed/i;
const SUMMARY = /SWUpdate \*failed\*|Image invalid or corrupted|Compatible SW not found/i;

export interface SwupdateVerdict {
  ok: boolean;
  result?: 'failed' | 'verification-failed';
  message?: string;
}

/** Reads SWUpdate's verdict from its output lines (see the note on exit codes above). */
export function swupdateVerdict(r: RunResult): SwupdateVerdict {
  const errors: string[] = [];
  let success = false;
  for (const raw of r.lines) {
    const line = raw.trim();
    const f = FAILED.exec(line);
    if (f?.[1]) errors.push(f[1].trim());
    else if (/SWUPDATE successful/.test(line)) success = true;
  }
  if (success && errors.length === 0 && !r.aborted && !r.timedOut && !r.spawnError) return { ok: true };
  if (r.spawnError || r.aborted || r.timedOut) return { ok: false, result: 'failed', message: `swupdate ${describeExit(r)}` };
  const verification = errors.find((e) => VERIFICATION.test(e));
  const incompatible = errors.find((e) => NOT_COMPATIBLE.test(e));
  const cause = verification ?? incompatible ?? errors.find((e) => !SUMMARY.test(e)) ?? errors[0];
  if (verification) return { ok: false, result: 'verification-failed', message: verification };
  if (incompatible) return { ok: false, result: 'failed', message: incompatible };
  // "Image invalid or corrupted" alone: SWUpdate refused the image without naming a handler error
  if (!cause || /Image invalid or corrupted/i.test(cause)) {
    return { ok: false, result: 'verification-failed', message: cause ?? `swupdate reported no result (${describeExit(r)}): ${tail(r.lines)}` };
  }
  return { ok: false, result: 'failed', message: cause };
}

export class SwupdateInstaller implements InstallerAdapter {
  readonly type = 'swupdate';
  private readonly tmpDir: string;

  constructor(
    private readonly options: SwupdateInstallerOptions,
    private readonly deps: AdapterDeps,
  ) {
    this.tmpDir = options.tmpDir ?? path.join(deps.stateDir, 'adapters', 'swupdate', 'tmp');
  }

  private args(file: string, checkOnly: boolean): string[] {
    const o = this.options;
    return [
      'swupdate',
      ...(checkOnly ? ['-c'] : []),
      '-i', file,
      ...(o.publicKey ? ['-k', o.publicKey] : []),
      ...(o.hardware ? ['-H', o.hardware] : []),
      ...(o.selection ? ['-e', o.selection] : []),
    ];
  }

  private async run(file: string, checkOnly: boolean, signal: AbortSignal, onLine?: (line: string) => void): Promise<RunResult> {
    await fsp.mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    return runCommand(this.args(file, checkOnly), {
      env: { ...this.deps.env, TMPDIR: this.tmpDir },
      signal,
      timeoutMs: this.options.timeoutS !== undefined ? this.options.timeoutS * 1000 : undefined,
      onLine,
    });
  }

  async inspect(file: string, signal: AbortSignal): Promise<{ ok: boolean; message?: string }> {
    const log = this.deps.log;
    const r = await this.run(file, true, signal);
    const v = swupdateVerdict(r);
    if (v.ok) {
      log.info({ file }, 'swupdate: image checked (signature, hashes, hardware)');
      return { ok: true };
    }
    log.warn({ file, exit: describeExit(r) }, `swupdate: image rejected by the check: ${v.message}`);
    return { ok: false, message: v.message };
  }

  async install(
    file: string,
    { signal, onProgress }: { signal: AbortSignal; onProgress: (p: InstallProgress) => void },
  ): Promise<InstallOutcome> {
    const log = this.deps.log;
    log.info({ file }, 'swupdate: installing image');
    const r = await this.run(file, false, signal, (raw) => {
      const m = LOG_LINE.exec(raw.trim());
      if (!m || m[1] !== 'INFO ') return;
      const text = m[2]!;
      if (/SWUPDATE started/.test(text)) onProgress({ percent: 0, message: 'Software update started' });
      else if (/Installation in progress/.test(text)) onProgress({ message: 'Installation in progress' });
      else if (/SWUPDATE successful/.test(text)) onProgress({ percent: 100, message: 'Software update successful' });
    });
    if (r.aborted) {
      log.warn('swupdate: install aborted; the target may be partly written');
      return { result: 'failed', message: 'installation aborted' };
    }
    const v = swupdateVerdict(r);
    if (!v.ok) {
      log.warn({ exit: describeExit(r) }, `swupdate: install failed: ${v.message}`);
      return { result: v.result!, message: v.message };
    }
    if (r.exitCode !== 0) log.debug({ exit: describeExit(r) }, 'swupdate: reported success with a non-zero exit code');
    const result = this.options.rebootRequired ? 'reboot-required' : 'installed';
    log.info(`swupdate: image installed (${result})`);
    return { result, confirmData: {} };
  }

  async confirm(): Promise<ConfirmOutcome> {
    const log = this.deps.log;
    const command = this.options.confirmCommand;
    if (!command) {
      log.info('swupdate: no confirm command configured, new firmware taken as installed');
      return { result: 'installed' };
    }
    log.info({ command: command[0] }, 'swupdate: running confirm command');
    const r = await runCommand(command, {
      env: this.deps.env,
      timeoutMs: this.options.timeoutS !== undefined ? this.options.timeoutS * 1000 : undefined,
    });
    if (r.exitCode === 0 && !r.timedOut) {
      log.info('swupdate: confirm command succeeded');
      return { result: 'installed' };
    }
    const out = tail(r.lines);
    const message = `confirm command failed (${describeExit(r)})${out ? `: ${out}` : ''}`;
    log.warn(`swupdate: ${message}`);
    return { result: 'failed', message };
  }
}

export default defineAdapter({
  slot: 'installer',
  type: 'swupdate',
  optionsSchema,
  create(options, deps) {
    const str = (k: string) => (typeof options[k] === 'string' && options[k] !== '' ? (options[k] as string) : undefined);
    const confirmCommand = options.confirmCommand;
    if (
      confirmCommand !== undefined &&
      (!Array.isArray(confirmCommand) || confirmCommand.length === 0 || !confirmCommand.every((a) => typeof a === 'string'))
    ) {
      throw new Error('swupdate installer: "confirmCommand" must be a non-empty array of strings (argv)');
    }
    return new SwupdateInstaller(
      {
        publicKey: str('publicKey'),
        hardware: str('hardware'),
        selection: str('selection'),
        rebootRequired: options.rebootRequired !== false,
        confirmCommand: confirmCommand as string[] | undefined,
        tmpDir: str('tmpDir'),
        timeoutS: typeof options.timeoutS === 'number' ? options.timeoutS : undefined,
      },
      deps,
    );
  },
});
