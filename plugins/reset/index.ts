/**
 * reset: answers `is_reset_allowed` and performs `reset` through the power adapter.
 *
 * - is_reset_allowed: false while another plugin objects (ctx.resetVetoes, e.g. a firmware
 *   installation that must not be interrupted); a running charging session is no reason to refuse,
 *   EVerest handles those itself.
 * - reset: Soft restarts EVerest (`restartApplication()`), Hard reboots the board (`reboot()`),
 *   NotSpecified does what option `notSpecified` says (OCPP 2.0.1 always sends NotSpecified).
 *   Before acting it records the boot reason the next start reports: ScheduledReset when
 *   `scheduled` is true, otherwise RemoteReset. A reset that arrives while one is under way is
 *   logged and dropped.
 */
import { inject, injectable } from 'tsyringe';
import {
  API_VERSION,
  TOKENS,
  type BootReason,
  type Handlers,
  type Plugin,
  type PluginContext,
  type PowerAdapter,
  type ResetRequest,
  type ResetType,
} from '../../core/api.js';

const RESET_TYPES: readonly ResetType[] = ['Soft', 'Hard', 'NotSpecified'];
/** after a successful reboot() the daemon should be gone within this time; until then resets are dropped */
const REBOOT_GRACE_MS = 5 * 60_000;

export interface ResetOptions {
  notSpecified: 'Hard' | 'Soft';
  delayS: number;
}

type Action = 'Hard' | 'Soft';

interface Pending {
  action: Action;
  reason: BootReason;
  since: string;
}

@injectable()
export default class ResetPlugin implements Plugin {
  static readonly pluginName = 'reset';
  static readonly apiVersion = API_VERSION;
  static readonly operations = ['is_reset_allowed', 'reset'] as const;
  static readonly adapters = ['power'] as const;
  static readonly optionsSchema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      notSpecified: {
        enum: ['Hard', 'Soft'],
        default: 'Hard',
        description: 'what a reset of type NotSpecified does (OCPP 2.0.1 always sends NotSpecified)',
      },
      delayS: {
        type: 'number',
        minimum: 0,
        maximum: 3600,
        default: 0,
        description: 'wait this many seconds after the reset command before acting',
      },
    },
  };

  readonly #ctx: PluginContext;
  readonly #power: PowerAdapter;
  readonly #options: ResetOptions;
  #pending: Pending | undefined;
  #timer: NodeJS.Timeout | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #stopWaiter: (() => void) | undefined;
  readonly #onRestart = () => this.#clearAfterReboot('EVerest restarted');

  constructor(@inject(TOKENS.Context) ctx: PluginContext, @inject(TOKENS.Power) power: PowerAdapter) {
    this.#ctx = ctx;
    this.#power = power;
    const o = ctx.options;
    this.#options = {
      notSpecified: o.notSpecified === 'Soft' ? 'Soft' : 'Hard',
      delayS: typeof o.delayS === 'number' && Number.isFinite(o.delayS) && o.delayS > 0 ? o.delayS : 0,
    };
  }

  handlers(): Handlers {
    return {
      is_reset_allowed: (type) => this.isResetAllowed(type),
      reset: (request) => {
        // fire and forget: the work runs after the handler returns, errors are logged there
        void this.reset(request);
      },
    };
  }

  start(): void {
    this.#ctx.everest.on('restart', this.#onRestart);
  }

  stop(): void {
    this.#stopped = true;
    this.#ctx.everest.off('restart', this.#onRestart);
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#stopWaiter?.();
      this.#ctx.log.warn({ pending: this.#pending }, 'daemon stopping: the delayed reset is not carried out');
    }
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
  }

  /** true when a reset may be carried out now */
  isResetAllowed(type: unknown): boolean {
    const log = this.#ctx.log;
    if (!isResetType(type)) {
      log.warn({ type }, 'is_reset_allowed: unknown reset type; answering false');
      return false;
    }
    const objections = this.#ctx.resetVetoes.check(type);
    if (objections.length > 0) {
      log.info({ type, objections }, `is_reset_allowed(${type}): refused: ${objections.join('; ')}`);
      return false;
    }
    // the router logs the request and its answer; a refusal is logged above with its reasons
    log.debug({ type, action: this.#action(type) }, `is_reset_allowed(${type}): allowed`);
    return true;
  }

  /** carries out a reset command; resolves when it was acted on, ignored or failed (never rejects) */
  async reset(request: unknown): Promise<void> {
    const log = this.#ctx.log;
    const parsed = parseRequest(request);
    if (typeof parsed === 'string') {
      log.warn({ request }, `reset ignored: ${parsed}`);
      return;
    }
    const { type, scheduled } = parsed;
    if (this.#pending) {
      log.warn({ type, scheduled, pending: this.#pending }, 'reset ignored: a reset is already under way');
      return;
    }
    const objections = this.#ctx.resetVetoes.check(type);
    if (objections.length > 0) {
      // EVerest asked is_reset_allowed first; OCPP has accepted the reset by now, so it is carried out
      log.warn({ type, objections }, `reset ${type} carried out despite objections: ${objections.join('; ')}`);
    }
    const action = this.#action(type);
    const reason: BootReason = scheduled ? 'ScheduledReset' : 'RemoteReset';
    const pending: Pending = { action, reason, since: new Date().toISOString() };
    this.#pending = pending;
    log.info(
      { type, scheduled, action, reason, delayS: this.#options.delayS },
      `reset ${type}${scheduled ? ' (scheduled)' : ''}: ${action === 'Hard' ? 'rebooting the board' : 'restarting EVerest'}` +
        (this.#options.delayS > 0 ? ` in ${this.#options.delayS} s` : ''),
    );
    if (this.#options.delayS > 0) {
      const go = await new Promise<boolean>((resolve) => {
        this.#timer = setTimeout(() => resolve(true), this.#options.delayS * 1000);
        this.#stopWaiter = () => resolve(false);
      });
      this.#timer = undefined;
      this.#stopWaiter = undefined;
      if (!go) return;
    }
    if (this.#stopped) return;
    await this.#act(pending);
  }

  async #act(pending: Pending): Promise<void> {
    const log = this.#ctx.log;
    let recorded: string | undefined;
    try {
      await this.#ctx.bootReason.record(pending.reason);
      const now = await this.#ctx.bootReason.peek();
      if (now?.reason === pending.reason) recorded = now.at;
    } catch (err) {
      log.error({ err: errorText(err), reason: pending.reason }, 'could not persist the boot reason; resetting anyway');
    }
    try {
      if (pending.action === 'Hard') await this.#power.reboot();
      else await this.#power.restartApplication();
    } catch (err) {
      log.error({ err: errorText(err), action: pending.action }, `reset failed: ${errorText(err)}`);
      this.#pending = undefined;
      await this.#undoRecord(pending.reason, recorded);
      return;
    }
    if (pending.action === 'Soft') {
      log.info('EVerest restarted (Soft reset done)');
      this.#pending = undefined;
    } else {
      log.info('reboot under way');
      // a real reboot ends this process; if it does not, accept resets again after a while
      this.#graceTimer = setTimeout(() => this.#clearAfterReboot('no reboot happened'), REBOOT_GRACE_MS);
      this.#graceTimer.unref();
    }
  }

  #clearAfterReboot(why: string): void {
    if (this.#pending?.action !== 'Hard' || this.#timer) return;
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    this.#ctx.log.info({ pending: this.#pending }, `${why}; accepting resets again`);
    this.#pending = undefined;
  }

  /** the reset did not happen: drop the reason this plugin just recorded (never another plugin's) */
  async #undoRecord(reason: BootReason, at: string | undefined): Promise<void> {
    if (!at) return;
    try {
      const now = await this.#ctx.bootReason.peek();
      if (now?.reason === reason && now.at === at) await this.#ctx.bootReason.consume();
    } catch (err) {
      this.#ctx.log.error({ err: errorText(err) }, 'could not withdraw the recorded boot reason');
    }
  }

  #action(type: ResetType): Action {
    return type === 'NotSpecified' ? this.#options.notSpecified : type;
  }
}

function isResetType(value: unknown): value is ResetType {
  return typeof value === 'string' && (RESET_TYPES as readonly string[]).includes(value);
}

/** the reset request, or why it is invalid */
function parseRequest(request: unknown): { type: ResetType; scheduled: boolean } | string {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) return 'the message is not an object';
  const { type, scheduled } = request as ResetRequest & Record<string, unknown>;
  if (type !== undefined && !isResetType(type)) return `unknown reset type ${JSON.stringify(type)}`;
  if (scheduled !== undefined && typeof scheduled !== 'boolean') return `"scheduled" is not a boolean: ${JSON.stringify(scheduled)}`;
  return { type: type ?? 'NotSpecified', scheduled: scheduled ?? false };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
