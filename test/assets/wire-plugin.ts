/**
 * A third-party-style plugin for the core's wire tests, written without decorators (static
 * `inject`) and loaded by path. It answers every operation; `options.behaviour` makes a
 * handler throw, hang or return an invalid (or unserialisable) reply; commands are recorded in its state.
 */
import { API_VERSION, TOKENS, type Handlers, type Operation, type Plugin, type PluginContext, type RequestMeta } from '../../core/api.js';

type Behaviour = 'normal' | 'throw' | 'hang' | 'invalid' | 'unserialisable' | 'slow' | 'throw-now' | 'answer-now' | 'commit-then-slow' | 'commit-then-hang' | 'slow-then-commit';

export default class WirePlugin implements Plugin {
  static readonly pluginName = 'wire-test';
  static readonly apiVersion = API_VERSION;
  static readonly operations: readonly Operation[] = [
    'update_firmware', 'upload_logs', 'is_reset_allowed', 'set_system_time', 'get_boot_reason', 'allow_firmware_installation', 'reset',
  ];
  static readonly inject = [TOKENS.Context];
  static readonly optionsSchema = {
    type: 'object',
    properties: {
      behaviour: { type: 'object', additionalProperties: { enum: ['normal', 'throw', 'hang', 'invalid', 'unserialisable', 'slow', 'throw-now', 'answer-now', 'commit-then-slow', 'commit-then-hang', 'slow-then-commit'] }, default: {} },
      startFails: { type: 'boolean', default: false },
    },
    additionalProperties: false,
  };

  readonly #ctx: PluginContext;
  readonly #commands: unknown[] = [];

  constructor(ctx: PluginContext) {
    this.#ctx = ctx;
  }

  async start(): Promise<void> {
    if (this.#ctx.options.startFails) throw new Error('start failed on purpose');
  }

  async #behave<T>(op: Operation, value: T, invalid: unknown, meta?: RequestMeta): Promise<T> {
    const b = ((this.#ctx.options.behaviour as Record<string, Behaviour>)[op] ?? 'normal') as Behaviour;
    if (b === 'commit-then-slow' || b === 'commit-then-hang') {
      await this.#record('commit', meta!.commit());
      if (b === 'commit-then-hang') return new Promise<T>(() => undefined);
      await new Promise((r) => setTimeout(r, 1500));
      return value;
    }
    if (b === 'slow-then-commit') {
      await new Promise((r) => setTimeout(r, 1500));
      await this.#record('commit', { committed: meta!.commit(), aborted: meta!.signal.aborted });
      return value;
    }
    if (b === 'throw') throw new Error(`${op} failed on purpose`);
    if (b === 'hang') return new Promise<T>(() => undefined);
    if (b === 'invalid') return invalid as T;
    if (b === 'unserialisable') return 10n as T; // JSON.stringify throws on a BigInt
    if (b === 'slow') await new Promise((r) => setTimeout(r, 1500));
    return value;
  }

  async #record(op: string, payload: unknown): Promise<void> {
    this.#commands.push({ op, payload: payload ?? null });
    await this.#ctx.state.set('commands', this.#commands);
  }

  handlers(): Handlers {
    return {
      update_firmware: async (req, meta) => {
        await this.#record('update_firmware', req);
        const reply = await this.#behave('update_firmware', 'Accepted' as const, 'Maybe', meta);
        this.#ctx.publish('firmware_update_status', { firmware_update_status: 'Downloading', request_id: req.request_id });
        return reply;
      },
      upload_logs: async (req) => {
        await this.#record('upload_logs', req);
        const reply = await this.#behave('upload_logs', { upload_logs_status: 'Accepted' as const, file_name: 'wire.tar.gz' }, { status: 'ok' });
        const id = req.request_id ?? -1;
        this.#ctx.publish('log_status', { log_status: 'Uploading', request_id: id });
        this.#ctx.publish('log_status', { log_status: 'Uploaded', request_id: id }, { final: true });
        return reply;
      },
      is_reset_allowed: (type) => {
        // synchronous handlers: answered or thrown before any await
        const b = (this.#ctx.options.behaviour as Record<string, Behaviour>).is_reset_allowed;
        if (b === 'throw-now') throw new Error('is_reset_allowed failed on purpose, synchronously');
        if (b === 'answer-now') return type !== 'Hard';
        return this.#behave('is_reset_allowed', type !== 'Hard', 'yes');
      },
      set_system_time: async (time) => {
        await this.#record('set_system_time', time);
        return this.#behave('set_system_time', true, 'true');
      },
      get_boot_reason: () => this.#behave('get_boot_reason', 'PowerUp' as const, 'Exploded'),
      allow_firmware_installation: async () => {
        await this.#record('allow_firmware_installation', undefined);
      },
      reset: async (req) => {
        await this.#record('reset', req);
        // an invalid status must be dropped by the core, not sent to EVerest
        this.#ctx.publish('firmware_update_status', { firmware_update_status: 'Bogus', request_id: 1 } as never);
      },
    };
  }
}
