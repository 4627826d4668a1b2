/**
 * Clock adapter `simulated`: never touches the system clock. It keeps the difference between the
 * time it was told and the real clock in `<stateDir>/adapters/simulated-clock/clock.json` and
 * reports the shifted time through `now()`. `ntpSynchronized` answers the option of that name.
 *
 *   "clock": { "type": "simulated", "ntpSynchronized": false }
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { defineAdapter } from '../../core/api.js';
import { writeFileAtomic } from '../../core/state.js';
import type { ClockAdapter } from './types.js';
import { assertValidDate } from './format.js';

interface SimulatedClockState {
  /** simulated time minus real time, in ms */
  offsetMs: number;
  /** the last time that was set, RFC 3339 */
  lastSet: string;
  /** real time of that call */
  at: string;
}

export default defineAdapter({
  slot: 'clock',
  type: 'simulated',
  optionsSchema: {
    type: 'object',
    properties: {
      ntpSynchronized: { type: 'boolean', default: false, description: 'what ntpSynchronized() answers' },
    },
  },
  async create(options, deps): Promise<ClockAdapter> {
    const dir = path.join(deps.stateDir, 'adapters', 'simulated-clock');
    const file = path.join(dir, 'clock.json');
    const log = deps.log.child({ adapter: 'clock/simulated' });
    let offsetMs = 0;
    try {
      const saved = JSON.parse(await fsp.readFile(file, 'utf8')) as Partial<SimulatedClockState>;
      if (typeof saved.offsetMs === 'number' && Number.isFinite(saved.offsetMs)) offsetMs = saved.offsetMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err: (err as Error).message, file }, 'ignoring unreadable simulated clock state');
    }
    return {
      type: 'simulated',
      async setTime(time) {
        assertValidDate(time);
        const realNow = Date.now();
        const state: SimulatedClockState = { offsetMs: time.getTime() - realNow, lastSet: time.toISOString(), at: new Date(realNow).toISOString() };
        await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
        await writeFileAtomic(file, `${JSON.stringify(state)}\n`);
        offsetMs = state.offsetMs;
        log.info({ time: state.lastSet, offsetMs }, 'simulated clock set (system clock untouched)');
      },
      async ntpSynchronized() {
        return options.ntpSynchronized === true;
      },
      now() {
        return new Date(Date.now() + offsetMs);
      },
    };
  },
});
