/**
 * boot-reason: answers `get_boot_reason`, which EVerest asks once at each start-up (for OCPP's
 * BootNotification).
 *
 * 1. A reason recorded before a restart (RemoteReset/ScheduledReset by the reset plugin,
 *    FirmwareUpdate by firmware-update) is reported once and then cleared.
 * 2. Otherwise, when EVerest restarted while the OS kept running (this process saw a heartbeat
 *    restart, already answered once, or a previous run in this same kernel boot already answered):
 *    ApplicationReset.
 * 3. Otherwise, the first answer of a boot: Watchdog when a watchdog's `bootstatus` is non-zero,
 *    PowerUp when this is a new kernel boot (boot id differs from the one stored at the last start,
 *    or none was stored), Unknown when the boot id cannot be read.
 *
 * State (`<stateDir>/boot-reason/boot.json`): the boot id of the current boot and whether EVerest
 * has been told the boot's reason yet, so a daemon restart in the same boot that comes before
 * EVerest's question still reports the boot's reason. It is written only when it changes.
 *
 * Answers that change something (consuming a recorded reason, the first answer of a boot) run one
 * at a time. Once EVerest has been told, an answer with no recorded reason pending is
 * ApplicationReset and changes nothing: it is given at once, without waiting behind the others.
 */
import * as fsp from 'node:fs/promises';
import { inject, injectable } from 'tsyringe';
import { API_VERSION, BOOT_REASONS, TOKENS, type BootReason, type Handlers, type Plugin, type PluginContext, type RequestControl } from '../../core/api.js';

interface BootState {
  bootId: string;
  /** EVerest has been told a boot reason in this boot */
  told: boolean;
}

type BootKind = 'new' | 'same' | 'unknown';

@injectable()
export default class BootReasonPlugin implements Plugin {
  static readonly pluginName = 'boot-reason';
  static readonly apiVersion = API_VERSION;
  static readonly operations = ['get_boot_reason'] as const;
  static readonly adapters = [] as const;
  static readonly optionsSchema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      bootIdPath: {
        type: 'string',
        minLength: 1,
        default: '/proc/sys/kernel/random/boot_id',
        description: 'file holding the kernel boot id (changes at every boot)',
      },
      watchdogGlob: {
        type: 'string',
        minLength: 1,
        default: '/sys/class/watchdog/*/bootstatus',
        description: 'watchdog bootstatus files; a non-zero value means the watchdog reset the board',
      },
    },
  };

  readonly #ctx: PluginContext;
  readonly #bootIdPath: string;
  readonly #watchdogGlob: string;
  #bootId: string | undefined;
  #bootKind: BootKind = 'unknown';
  #told = false;
  /** what boot.json holds, as far as this process knows (undefined: nothing readable) */
  #persisted: BootState | undefined;
  #started: Promise<void> | undefined;
  /** #load() has finished */
  #loaded = false;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(@inject(TOKENS.Context) ctx: PluginContext) {
    this.#ctx = ctx;
    const o = ctx.options;
    this.#bootIdPath = typeof o.bootIdPath === 'string' ? o.bootIdPath : '/proc/sys/kernel/random/boot_id';
    this.#watchdogGlob = typeof o.watchdogGlob === 'string' ? o.watchdogGlob : '/sys/class/watchdog/*/bootstatus';
  }

  handlers(): Handlers {
    return { get_boot_reason: (_payload, meta) => this.#knownAnswer() ?? this.getBootReason(meta) };
  }

  start(): Promise<void> {
    this.#started ??= this.#load().finally(() => (this.#loaded = true));
    return this.#started;
  }

  /**
   * The answer when it needs no waiting: EVerest asked again within this kernel boot and nothing
   * is recorded (the store knows without reading its file). getBootReason() gives the same answer
   * through its queue; this spares a repeated question the promises on the way.
   */
  #knownAnswer(): BootReason | undefined {
    if (!this.#loaded || !this.#told || this.#ctx.bootReason.knownEmpty !== true) return undefined;
    return this.#askedAgain();
  }

  /** told already and nothing recorded: routine (the first answer of this boot was logged at info) */
  #askedAgain(): BootReason {
    this.#ctx.log.debug({ reason: 'ApplicationReset' }, 'boot reason ApplicationReset (EVerest asked again within the same kernel boot)');
    return 'ApplicationReset';
  }

  async #load(): Promise<void> {
    const log = this.#ctx.log;
    this.#bootId = await readBootId(this.#bootIdPath);
    let saved: Partial<BootState> | undefined;
    try {
      saved = await this.#ctx.state.get<Partial<BootState>>('boot');
    } catch (err) {
      log.warn({ err: errorText(err) }, 'cannot read the stored boot id');
    }
    if (!this.#bootId) {
      this.#bootKind = 'unknown';
      log.warn({ bootIdPath: this.#bootIdPath }, 'cannot read the kernel boot id; a new boot cannot be told from an EVerest restart');
      return;
    }
    if (saved?.bootId === this.#bootId) {
      this.#bootKind = 'same';
      this.#told = saved.told === true;
      if (typeof saved.told === 'boolean') this.#persisted = { bootId: saved.bootId, told: saved.told };
      log.info({ bootId: this.#bootId, told: this.#told }, 'same kernel boot as the last run');
    } else {
      this.#bootKind = 'new';
      this.#told = false;
      log.info({ bootId: this.#bootId, previous: saved?.bootId ?? null }, 'new kernel boot since the last run');
      await this.#save();
    }
  }

  async getBootReason(meta?: RequestControl): Promise<BootReason> {
    await this.start();
    // Told already and nothing recorded: ApplicationReset, nothing to change, no need to queue.
    // A recorded reason seen here goes through the queue, where consume() hands it out once.
    if (this.#told && !(await this.#recordPending())) return this.#askedAgain();
    const run = this.#queue.then(() => this.#answer(meta));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** true when a reason is recorded, or when that cannot be read (the queued path handles both) */
  async #recordPending(): Promise<boolean> {
    try {
      return (await this.#ctx.bootReason.peek()) !== undefined;
    } catch {
      return true;
    }
  }

  async #answer(meta?: RequestControl): Promise<BootReason> {
    await this.start();
    const log = this.#ctx.log;
    // the answer consumes the recorded reason: not for a request whose safe reply (Unknown) was sent
    if (meta && !meta.commit()) {
      log.warn('get_boot_reason: the safe reply (Unknown) was sent meanwhile; the recorded reason is kept for the next request');
      return 'Unknown';
    }
    let reason: BootReason | undefined;
    let why: string;
    try {
      const record = await this.#ctx.bootReason.consume();
      if (record && (BOOT_REASONS as readonly string[]).includes(record.reason)) {
        reason = record.reason;
        why = `recorded at ${record.at}`;
      } else if (record) {
        log.warn({ record }, 'ignoring a recorded boot reason that is not a BootReason');
      }
    } catch (err) {
      log.error({ err: errorText(err) }, 'cannot read the recorded boot reason');
    }
    if (!reason) {
      [reason, why] = await this.#detect();
    }
    this.#told = true;
    await this.#save();
    log.info({ reason }, `boot reason ${reason} (${why!})`);
    return reason;
  }

  async #detect(): Promise<[BootReason, string]> {
    const restarts = this.#ctx.everest.restarts;
    if (restarts > 0) return ['ApplicationReset', `EVerest restarted ${restarts} time(s) while the daemon ran`];
    if (this.#told) return ['ApplicationReset', 'EVerest asked again within the same kernel boot'];
    const watchdog = await this.#watchdogFired();
    if (watchdog) return ['Watchdog', `${watchdog} is non-zero`];
    if (this.#bootKind === 'new' || this.#bootKind === 'same') return ['PowerUp', 'first start of EVerest in this kernel boot, nothing recorded'];
    return ['Unknown', 'the kernel boot id is unreadable'];
  }

  /** the first bootstatus file that reports a watchdog reset, if any */
  async #watchdogFired(): Promise<string | undefined> {
    let files: string[];
    try {
      const { glob } = await import('tinyglobby'); // loaded when a glob is evaluated, not at start-up
      files = (await glob(this.#watchdogGlob, { absolute: true, onlyFiles: true })).sort();
    } catch (err) {
      this.#ctx.log.warn({ err: errorText(err), glob: this.#watchdogGlob }, 'cannot list watchdog bootstatus files');
      return undefined;
    }
    for (const file of files) {
      try {
        const text = (await fsp.readFile(file, 'utf8')).trim();
        const value = Number.parseInt(text, text.startsWith('0x') ? 16 : 10);
        if (Number.isFinite(value) && value !== 0) return file;
      } catch (err) {
        this.#ctx.log.debug({ err: errorText(err), file }, 'cannot read a watchdog bootstatus file');
      }
    }
    return undefined;
  }

  /** persists the boot id and `told`, when they differ from what boot.json holds */
  async #save(): Promise<void> {
    if (!this.#bootId) return;
    const next: BootState = { bootId: this.#bootId, told: this.#told };
    if (this.#persisted?.bootId === next.bootId && this.#persisted.told === next.told) return;
    try {
      await this.#ctx.state.set('boot', next);
      this.#persisted = next;
    } catch (err) {
      this.#ctx.log.error({ err: errorText(err) }, 'cannot persist the boot id');
    }
  }
}

async function readBootId(file: string): Promise<string | undefined> {
  try {
    return (await fsp.readFile(file, 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
