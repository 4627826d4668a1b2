/**
 * A plugin whose start() takes `startMs` (like a plugin that restores state from a slow disk);
 * it answers get_boot_reason with PowerUp.
 */
import { API_VERSION, TOKENS, type Handlers, type Operation, type Plugin, type PluginContext } from '../../../core/api.js';

export default class SlowStartPlugin implements Plugin {
  static readonly pluginName = 'slow-start';
  static readonly apiVersion = API_VERSION;
  static readonly operations: readonly Operation[] = ['get_boot_reason'];
  static readonly inject = [TOKENS.Context];
  static readonly optionsSchema = {
    type: 'object',
    properties: {
      startMs: { type: 'integer', default: 1000 },
      /** publish log_status Uploading for this request id at the end of start() (a restored operation) */
      publishOnStart: { type: 'integer' },
    },
  };

  constructor(private readonly ctx: PluginContext) {}

  async start(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.ctx.options.startMs as number));
    const id = this.ctx.options.publishOnStart;
    if (typeof id === 'number') this.ctx.publish('log_status', { log_status: 'Uploading', request_id: id });
  }

  handlers(): Handlers {
    return { get_boot_reason: () => 'PowerUp' };
  }
}
