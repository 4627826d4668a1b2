/**
 * `script` installer: runs a vendor's existing install program.
 *
 * Config: `{ "type": "script", "command": ["/usr/lib/fw/install", "--image", "{file}"],
 *            "verify": ["/usr/lib/fw/verify"], "timeoutS": 900 }`
 *
 * - `{file}` in any argument of `command` becomes the path of the downloaded image.
 * - Each output line that is exactly a FirmwareUpdateStatusEnum name (e.g. `Installing`,
 *   `InstallRebooting`) is passed on with `onProgress({ status })`; a line `NN%` as a percentage.
 * - Exit 0: `installed`, or `reboot-required` when the script printed `InstallRebooting`.
 *   A printed `InstallVerificationFailed` / `InstallationFailed` decides the outcome whatever
 *   the exit code; otherwise a non-zero exit is `failed`.
 * - After the reboot, `confirm()` runs `verify` (exit 0: installed) or reports installed without one.
 */
import { defineAdapter, FIRMWARE_UPDATE_STATUSES } from '../../core/api.js';
import type { AdapterDeps, InstallOutcome, InstallerAdapter, ConfirmOutcome, InstallProgress } from '../../core/api.js';
import { describeExit, runCommand, tail } from './run.js';

export interface ScriptInstallerOptions {
  command: string[];
  verify?: string[];
  timeoutS?: number;
}

const STATUS_NAMES: ReadonlySet<string> = new Set(FIRMWARE_UPDATE_STATUSES);
const FILE_PLACEHOLDER = '{file}';

export const optionsSchema = {
  type: 'object',
  required: ['command'],
  properties: {
    command: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      description: 'argv of the install program; "{file}" is replaced by the downloaded image path',
    },
    verify: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      description: 'argv run after the reboot; exit 0 means the new firmware is good',
    },
    timeoutS: { type: 'number', exclusiveMinimum: 0, description: 'end the command (and its children) after this long' },
  },
} as const;

/** Replaces every `{file}` inside every argument. */
export function substituteFile(argv: readonly string[], file: string): string[] {
  return argv.map((arg) => arg.split(FILE_PLACEHOLDER).join(file));
}

export class ScriptInstaller implements InstallerAdapter {
  readonly type = 'script';

  constructor(
    private readonly options: ScriptInstallerOptions,
    private readonly deps: AdapterDeps,
  ) {}

  async install(
    file: string,
    { signal, onProgress }: { signal: AbortSignal; onProgress: (p: InstallProgress) => void },
  ): Promise<InstallOutcome> {
    const log = this.deps.log;
    const argv = substituteFile(this.options.command, file);
    log.info({ command: argv[0] }, 'script installer: running install command');
    let rebooting = false;
    let failure: 'failed' | 'verification-failed' | undefined;
    let failureStatus: string | undefined;
    const result = await runCommand(argv, {
      env: this.deps.env,
      signal,
      timeoutMs: this.timeoutMs(),
      onLine: (raw, stream) => {
        const line = raw.trim();
        if (stream === 'stdout' && STATUS_NAMES.has(line)) {
          if (line === 'InstallRebooting') rebooting = true;
          if (line === 'InstallVerificationFailed') failure = 'verification-failed';
          if (line === 'InstallationFailed') failure = 'failed';
          if (failure) failureStatus = line;
          onProgress({ status: line });
          return;
        }
        const pct = stream === 'stdout' ? /^(\d{1,3})%$/.exec(line) : null;
        if (pct) {
          onProgress({ percent: Math.min(100, Number(pct[1])) });
          return;
        }
        if (line) log.debug({ stream, line }, 'script installer output');
      },
    });
    const output = tail(result.lines.filter((l) => !STATUS_NAMES.has(l.trim())));
    if (result.aborted) {
      log.warn('script installer: aborted, install command ended');
      return { result: 'failed', message: 'installation aborted' };
    }
    if (failure) {
      const message = `install command reported ${failureStatus}${output ? `: ${output}` : ''}`;
      log.warn({ exit: describeExit(result) }, `script installer: ${message}`);
      return { result: failure, message };
    }
    if (result.exitCode === 0 && !result.timedOut) {
      const outcome = rebooting ? 'reboot-required' : 'installed';
      log.info(`script installer: install command succeeded (${outcome})`);
      return { result: outcome, confirmData: {} };
    }
    const message = `install command failed (${describeExit(result)})${output ? `: ${output}` : ''}`;
    log.warn(`script installer: ${message}`);
    return { result: 'failed', message };
  }

  async confirm(): Promise<ConfirmOutcome> {
    const log = this.deps.log;
    if (!this.options.verify) {
      log.info('script installer: no verify command configured, new firmware taken as installed');
      return { result: 'installed' };
    }
    log.info({ command: this.options.verify[0] }, 'script installer: running verify command');
    const result = await runCommand(this.options.verify, { env: this.deps.env, timeoutMs: this.timeoutMs() });
    if (result.exitCode === 0 && !result.timedOut) {
      log.info('script installer: verify command succeeded');
      return { result: 'installed' };
    }
    const output = tail(result.lines);
    const message = `verify command failed (${describeExit(result)})${output ? `: ${output}` : ''}`;
    log.warn(`script installer: ${message}`);
    return { result: 'failed', message };
  }

  private timeoutMs(): number | undefined {
    return this.options.timeoutS !== undefined ? this.options.timeoutS * 1000 : undefined;
  }
}

export default defineAdapter({
  slot: 'installer',
  type: 'script',
  optionsSchema,
  create(options, deps) {
    const command = options.command;
    if (!Array.isArray(command) || command.length === 0 || !command.every((a) => typeof a === 'string')) {
      throw new Error('script installer: "command" must be a non-empty array of strings (argv)');
    }
    const verify = options.verify;
    if (verify !== undefined && (!Array.isArray(verify) || verify.length === 0 || !verify.every((a) => typeof a === 'string'))) {
      throw new Error('script installer: "verify" must be a non-empty array of strings (argv)');
    }
    return new ScriptInstaller(
      {
        command: command as string[],
        verify: verify as string[] | undefined,
        timeoutS: typeof options.timeoutS === 'number' ? options.timeoutS : undefined,
      },
      deps,
    );
  },
});
