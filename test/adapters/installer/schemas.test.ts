import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { INSTALLERS } from '../../../adapters/installer/index.js';

describe('installer option schemas', () => {
  it('every built-in installer has a strict-valid schema whose defaults match what create() assumes', async () => {
    expect(Object.keys(INSTALLERS).sort()).toEqual(['rauc', 'script', 'simulated', 'swupdate']);
    const ajv = new Ajv({ strict: true, useDefaults: true, allErrors: true });
    const defaults: Record<string, Record<string, unknown>> = {};
    for (const [type, load] of Object.entries(INSTALLERS)) {
      const mod = (await load()).default;
      expect(mod.type).toBe(type);
      expect(mod.slot).toBe('installer');
      const validate = ajv.compile(mod.optionsSchema ?? {});
      const options: Record<string, unknown> = type === 'script' ? { command: ['/bin/true'] } : {};
      expect(validate(options), JSON.stringify(validate.errors)).toBe(true);
      defaults[type] = options;
    }
    expect(defaults.simulated).toEqual({ rebootRequired: true, failInstall: false, installDelayMs: 0 });
    expect(defaults.swupdate).toEqual({ rebootRequired: true });
    expect(defaults.rauc).toEqual({ healthCheckTimeoutS: 300, markBadOnFailure: false });
  });

  it('rejects a command given as one string and a malformed hardware value', async () => {
    const ajv = new Ajv({ strict: true, allErrors: true });
    const script = ajv.compile((await INSTALLERS.script!()).default.optionsSchema!);
    expect(script({ command: '/usr/bin/install {file}' })).toBe(false);
    const swupdate = ajv.compile((await INSTALLERS.swupdate!()).default.optionsSchema!);
    expect(swupdate({ hardware: 'no-revision' })).toBe(false);
    expect(swupdate({ hardware: 'board:1.0' })).toBe(true);
  });
});
