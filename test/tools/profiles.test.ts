/**
 * Every board profile in profiles/ is valid against the config schema and resolves the way
 * `check-config` resolves it (plugins loaded, every adapter slot they need bound and created),
 * so a profile cannot drift from the code. Each one is documented in profiles/README.md.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig, type ConfigInput } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { Daemon } from '../../core/kernel.js';
import { REPO_ROOT, tempDir } from '../helpers/daemon.js';

const DIR = path.join(REPO_ROOT, 'profiles');
const PROFILES = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

const EXPECTED: Record<string, { installer: string; power: string; clock: string; logSources: string }> = {
  'generic-scripts.json': { installer: 'script', power: 'command', clock: 'date', logSources: 'files, system-snapshot' },
  'rauc-systemd.json': { installer: 'rauc', power: 'systemd', clock: 'timedatectl', logSources: 'journald, system-snapshot' },
  'simulated.json': { installer: 'simulated', power: 'simulated', clock: 'simulated', logSources: 'system-snapshot' },
  'swupdate-systemd.json': { installer: 'swupdate', power: 'systemd', clock: 'timedatectl', logSources: 'journald, system-snapshot' },
};

describe('board profiles', () => {
  it('are the four documented ones', () => {
    expect(PROFILES).toEqual(Object.keys(EXPECTED));
    const readme = readFileSync(path.join(DIR, 'README.md'), 'utf8');
    for (const p of PROFILES) expect(readme, p).toContain(`## ${p}`);
  });

  it.each(PROFILES)('%s is valid and resolves: every built-in plugin with its adapters', async (file) => {
    const input = JSON.parse(readFileSync(path.join(DIR, file), 'utf8')) as ConfigInput;
    const config = resolveConfig(input, DIR, file);
    expect(config.stateDir).toMatch(/^\//);
    expect(config.mqtt.embeddedBroker).toBeUndefined();
    // resolve as check-config does, but with a temp state dir: simulated adapters write theirs
    const daemon = new Daemon(resolveConfig({ ...input, stateDir: tempDir('esc-profile-') }, DIR, file), { logger: createLogger({ level: 'silent' }) });
    const { plugins, adapters } = await daemon.resolve();
    expect(plugins.map((p) => p.name).sort()).toEqual(['boot-reason', 'firmware-update', 'log-upload', 'reset', 'system-time']);
    expect(Object.fromEntries(Object.entries(adapters).map(([slot, a]) => [slot, a.description]))).toEqual(EXPECTED[file]);
  });
});
