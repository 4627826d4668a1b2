/**
 * Test-only plugin, loaded by path: objects to resets while its flag file exists, the way the
 * firmware-update plugin objects while it installs. It claims no operation.
 */
import { existsSync } from 'node:fs';
import { API_VERSION, TOKENS, type Handlers, type Plugin, type PluginContext } from '../../../core/api.js';

export default class VetoPlugin implements Plugin {
  static readonly pluginName = 'veto-test';
  static readonly apiVersion = API_VERSION;
  static readonly operations = [] as const;
  static readonly inject = [TOKENS.Context];
  static readonly optionsSchema = {
    type: 'object',
    required: ['flagFile'],
    properties: { flagFile: { type: 'string' } },
  };

  readonly #ctx: PluginContext;
  #unregister: (() => void) | undefined;

  constructor(ctx: PluginContext) {
    this.#ctx = ctx;
  }

  handlers(): Handlers {
    return {};
  }

  start(): void {
    const flag = this.#ctx.options.flagFile as string;
    this.#unregister = this.#ctx.resetVetoes.register(this.#ctx.name, () => (existsSync(flag) ? 'firmware installation running' : undefined));
  }

  stop(): void {
    this.#unregister?.();
  }
}
