// @ts-check
/**
 * Plugin "vendor-lock": refuses resets (is_reset_allowed answers false) while a vendor
 * maintenance job holds its lock file. It answers no operation itself; the built-in reset plugin
 * asks every registered veto.
 *
 *   "plugins": [ ..., { "name": "vendor-lock", "module": "./vendor-installer/plugin.js",
 *                       "options": { "lockFile": "/run/vendor/maintenance.lock" } } ]
 *
 * No run-time import of the daemon: tokens are `Symbol.for('everest-system:<Name>')` and
 * API_VERSION is a number, both part of the API. So the plugin works with every build of the
 * daemon, including the single-file board bundle, where there is no package to import.
 */
import { existsSync } from 'node:fs';

/** @typedef {import('everest-system-client').Plugin} Plugin */
/** @typedef {import('everest-system-client').PluginClass} PluginClass */
/** @typedef {import('everest-system-client').PluginContext} PluginContext */
/** @typedef {import('everest-system-client').Handlers} Handlers */

/** @implements {Plugin} */
export default class VendorLockPlugin {
  static pluginName = 'vendor-lock';
  /** API_VERSION this plugin is written for */
  static apiVersion = 1;
  /** @type {import('everest-system-client').Operation[]} */
  static operations = [];
  /** TOKENS.Context */
  static inject = [Symbol.for('everest-system:Context')];
  static optionsSchema = {
    type: 'object',
    additionalProperties: false,
    required: ['lockFile'],
    properties: { lockFile: { type: 'string', minLength: 1, description: 'resets are refused while this file exists' } },
  };

  /** @param {PluginContext} ctx */
  constructor(ctx) {
    this.ctx = ctx;
    /** @type {(() => void) | undefined} */
    this.unregister = undefined;
  }

  start() {
    const lockFile = String(this.ctx.options.lockFile);
    this.unregister = this.ctx.resetVetoes.register(this.ctx.name, () =>
      existsSync(lockFile) ? `vendor maintenance running (${lockFile} exists)` : undefined,
    );
    this.ctx.log.info({ lockFile }, 'resets are refused while the lock file exists');
  }

  stop() {
    this.unregister?.();
  }

  /** @returns {Handlers} */
  handlers() {
    return {};
  }
}

/** compile-time check (tsc --checkJs) that the class has everything the host reads */
/** @type {PluginClass} */
export const checked = VendorLockPlugin;
