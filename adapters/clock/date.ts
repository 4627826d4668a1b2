/**
 * Clock adapter `date`: `date -u -s "YYYY-MM-DD HH:MM:SS"` (GNU coreutils and BusyBox both take
 * this form), then `hwclock --systohc --utc` when `hwclock` is true, so the RTC keeps the time
 * across a power cut. Needs the right to set the clock (root or CAP_SYS_TIME).
 *
 *   "clock": { "type": "date", "hwclock": true }
 */
import { defineAdapter } from '../../core/api.js';
import { runTool } from '../power/run.js';
import type { ClockAdapter } from './types.js';
import { assertValidDate, utcSpaced } from './format.js';

export default defineAdapter({
  slot: 'clock',
  type: 'date',
  optionsSchema: {
    type: 'object',
    properties: {
      hwclock: {
        type: 'boolean',
        default: false,
        description: 'also write the time to the hardware clock (`hwclock --systohc --utc`)',
      },
    },
  },
  create(options, deps): ClockAdapter {
    const hwclock = options.hwclock === true;
    const log = deps.log.child({ adapter: 'clock/date' });
    return {
      type: 'date',
      async setTime(time) {
        assertValidDate(time);
        const argv = ['date', '-u', '-s', utcSpaced(time)];
        log.debug({ argv }, 'setting the clock');
        await runTool(argv, { env: deps.env });
        if (hwclock) await runTool(['hwclock', '--systohc', '--utc'], { env: deps.env });
      },
    };
  },
});
