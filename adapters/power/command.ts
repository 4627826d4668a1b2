/**
 * Power adapter `command`: runs configured commands (argument arrays, no shell).
 *
 *   "power": { "type": "command", "reboot": ["/sbin/reboot"], "restart": ["/usr/bin/sv", "restart", "everest"] }
 */
import { defineAdapter } from '../../core/api.js';
import type { PowerAdapter } from './types.js';
import { ARGV_SCHEMA, runTool } from './run.js';

export default defineAdapter({
  slot: 'power',
  type: 'command',
  optionsSchema: {
    type: 'object',
    required: ['reboot', 'restart'],
    properties: {
      reboot: { ...ARGV_SCHEMA, description: 'argv that reboots the board' },
      restart: { ...ARGV_SCHEMA, description: 'argv that restarts EVerest' },
      timeoutS: { type: 'number', exclusiveMinimum: 0, default: 60, description: 'kill a command after this many seconds' },
    },
  },
  create(options, deps): PowerAdapter {
    const reboot = argv(options.reboot, 'reboot');
    const restart = argv(options.restart, 'restart');
    const timeoutMs = (typeof options.timeoutS === 'number' ? options.timeoutS : 60) * 1000;
    const log = deps.log.child({ adapter: 'power/command' });
    return {
      type: 'command',
      async reboot() {
        log.info({ argv: reboot }, 'rebooting the board');
        await runTool(reboot, { env: deps.env, timeoutMs });
      },
      async restartApplication() {
        log.info({ argv: restart }, 'restarting the charging application');
        await runTool(restart, { env: deps.env, timeoutMs });
      },
    };
  },
});

function argv(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string' && v.length > 0)) {
    throw new Error(`power adapter "command": "${name}" must be a non-empty array of strings (argv, no shell)`);
  }
  return [...value] as string[];
}
