/**
 * Clock adapter `timedatectl` (systemd-timedated):
 *   setTime:          `timedatectl set-time "YYYY-MM-DD HH:MM:SS"` (UTC: the tool runs with TZ=UTC,
 *                     because timedatectl reads the string as local time)
 *   ntpSynchronized:  `timedatectl show`, `NTPSynchronized=yes`
 *
 * timedated refuses set-time while NTP is active ("Automatic time synchronization is enabled").
 * With `"disableNtp": true` the adapter first runs `timedatectl set-ntp false`, switching NTP off
 * for good, so the CSMS becomes the time source. Default false: on a board that has NTP, leave the
 * clock to NTP and set the system-time plugin's `skipWhenNtpSynchronized` instead.
 *
 *   "clock": { "type": "timedatectl", "disableNtp": false }
 */
import { defineAdapter } from '../../core/api.js';
import { runTool } from '../power/run.js';
import type { ClockAdapter } from './types.js';
import { assertValidDate, utcSpaced } from './format.js';

export default defineAdapter({
  slot: 'clock',
  type: 'timedatectl',
  optionsSchema: {
    type: 'object',
    properties: {
      disableNtp: {
        type: 'boolean',
        default: false,
        description: 'run `timedatectl set-ntp false` before set-time (set-time fails while NTP is active)',
      },
    },
  },
  create(options, deps): ClockAdapter {
    const disableNtp = options.disableNtp === true;
    const log = deps.log.child({ adapter: 'clock/timedatectl' });
    const run = (args: string[]) => runTool(['timedatectl', ...args], { env: deps.env, extraEnv: { TZ: 'UTC' } });
    return {
      type: 'timedatectl',
      async setTime(time) {
        assertValidDate(time);
        if (disableNtp) await run(['set-ntp', 'false']);
        const value = utcSpaced(time);
        log.debug({ argv: ['timedatectl', 'set-time', value] }, 'setting the clock');
        await run(['set-time', value]);
      },
      async ntpSynchronized() {
        try {
          const { stdout } = await run(['show']);
          return parseNtpSynchronized(stdout);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'cannot read the NTP state from timedatectl');
          return undefined;
        }
      },
    };
  },
});

/** `NTPSynchronized=yes|no` from `timedatectl show`; undefined when absent */
export function parseNtpSynchronized(show: string): boolean | undefined {
  const m = /^NTPSynchronized=(\S*)\s*$/m.exec(show);
  if (!m) return undefined;
  if (m[1] === 'yes') return true;
  if (m[1] === 'no') return false;
  return undefined;
}
