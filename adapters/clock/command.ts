/**
 * Clock adapter `command`: runs a configured argv (no shell) in which every `{time}` is replaced
 * by the new time as RFC 3339 UTC (`2026-03-01T12:00:00Z`).
 *
 *   "clock": { "type": "command", "set": ["/usr/local/bin/set-clock", "--utc", "{time}"] }
 */
import { defineAdapter } from '../../core/api.js';
import { ARGV_SCHEMA, runTool } from '../power/run.js';
import type { ClockAdapter } from './types.js';
import { assertValidDate, rfc3339Utc } from './format.js';

export default defineAdapter({
  slot: 'clock',
  type: 'command',
  optionsSchema: {
    type: 'object',
    required: ['set'],
    properties: {
      set: { ...ARGV_SCHEMA, description: 'argv that sets the clock; {time} becomes the RFC 3339 UTC time' },
      timeoutS: { type: 'number', exclusiveMinimum: 0, default: 60, description: 'kill the command after this many seconds' },
    },
  },
  create(options, deps): ClockAdapter {
    const set = options.set;
    if (!Array.isArray(set) || set.length === 0 || !set.every((v) => typeof v === 'string' && v.length > 0)) {
      throw new Error('clock adapter "command": "set" must be a non-empty array of strings (argv, no shell)');
    }
    if (!set.some((a: string) => a.includes('{time}'))) {
      throw new Error('clock adapter "command": "set" must contain {time}');
    }
    const timeoutMs = (typeof options.timeoutS === 'number' ? options.timeoutS : 60) * 1000;
    const log = deps.log.child({ adapter: 'clock/command' });
    return {
      type: 'command',
      async setTime(time) {
        assertValidDate(time);
        const value = rfc3339Utc(time);
        const argv = (set as string[]).map((a) => a.replaceAll('{time}', value));
        log.debug({ argv }, 'setting the clock');
        await runTool(argv, { env: deps.env, timeoutMs });
      },
    };
  },
});
