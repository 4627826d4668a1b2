/**
 * Power adapter `simulated`: reboots and restarts nothing. Each call is logged and appended as a
 * JSON line to `<stateDir>/adapters/simulated-power/calls.jsonl` (`{"action":"reboot","at":"..."}`),
 * for demos and tests.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { defineAdapter } from '../../core/api.js';
import type { PowerAdapter } from './types.js';

export default defineAdapter({
  slot: 'power',
  type: 'simulated',
  optionsSchema: { type: 'object', properties: {} },
  create(_options, deps): PowerAdapter {
    const dir = path.join(deps.stateDir, 'adapters', 'simulated-power');
    const file = path.join(dir, 'calls.jsonl');
    const log = deps.log.child({ adapter: 'power/simulated' });
    const record = async (action: 'reboot' | 'restartApplication') => {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      await fsp.appendFile(file, `${JSON.stringify({ action, at: new Date().toISOString() })}\n`, { mode: 0o600 });
      log.info({ action, file }, `simulated ${action === 'reboot' ? 'reboot' : 'application restart'} (nothing was restarted)`);
    };
    return {
      type: 'simulated',
      reboot: () => record('reboot'),
      restartApplication: () => record('restartApplication'),
    };
  },
});
