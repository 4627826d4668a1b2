/**
 * Power adapter `systemd`: `systemctl reboot` for a Hard reset, `systemctl restart <unit>` for a
 * Soft reset (restarts EVerest while the OS keeps running).
 *
 *   "power": { "type": "systemd", "unit": "everest.service" }
 */
import { defineAdapter } from '../../core/api.js';
import type { PowerAdapter } from './types.js';
import { runTool } from './run.js';

export default defineAdapter({
  slot: 'power',
  type: 'systemd',
  optionsSchema: {
    type: 'object',
    properties: {
      unit: {
        type: 'string',
        minLength: 1,
        pattern: '^[^-\\s][^\\s]*$',
        default: 'everest.service',
        description: 'systemd unit that runs EVerest; restarted for a Soft reset',
      },
    },
  },
  create(options, deps): PowerAdapter {
    const unit = typeof options.unit === 'string' ? options.unit : 'everest.service';
    const log = deps.log.child({ adapter: 'power/systemd' });
    return {
      type: 'systemd',
      async reboot() {
        log.info({ argv: ['systemctl', 'reboot'] }, 'rebooting the board');
        await runTool(['systemctl', 'reboot'], { env: deps.env });
      },
      async restartApplication() {
        log.info({ argv: ['systemctl', 'restart', unit] }, `restarting ${unit}`);
        await runTool(['systemctl', 'restart', unit], { env: deps.env });
      },
    };
  },
});
