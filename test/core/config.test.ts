import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadConfig, resolveConfig } from '../../core/config.js';
import { SystemClientError } from '../../core/errors.js';
import { REPO_ROOT } from '../helpers/daemon.js';

describe('configuration', () => {
  test('the shipped plugins.config.json is valid and runs on the embedded default', () => {
    const cfg = loadConfig(path.join(REPO_ROOT, 'plugins.config.json'));
    expect(cfg.mqtt.embeddedBroker).toMatchObject({ host: '127.0.0.1' });
    expect(cfg.stateDir).toBe(path.join(REPO_ROOT, '.state'));
    expect(JSON.parse(readFileSync(path.join(REPO_ROOT, 'plugins.config.json'), 'utf8')).$schema).toBe('./core/config.schema.json');
  });

  test('defaults are applied and the result is frozen', () => {
    const cfg = resolveConfig({}, '/etc/everest-system');
    expect(cfg.moduleId).toBe('system_api');
    expect(cfg.mqtt).toMatchObject({ url: 'mqtt://127.0.0.1:1883', externalPrefix: '' });
    expect(cfg.communicationCheck.intervalMs).toBeLessThan(5000);
    expect(cfg.plugins).toBeUndefined();
    expect(Object.isFrozen(cfg.mqtt)).toBe(true);
  });

  test('relative paths resolve against the config folder', () => {
    const cfg = resolveConfig({ stateDir: 'state', mqtt: { tls: { ca: 'ca.pem' } } }, '/opt/esc');
    expect(cfg.stateDir).toBe('/opt/esc/state');
    expect(cfg.mqtt.tls?.ca).toBe('/opt/esc/ca.pem');
    expect(cfg.mqtt.tls?.rejectUnauthorized).toBe(true);
  });

  test('every problem is reported with its path', () => {
    try {
      resolveConfig({ moduleId: 'a/b', plugins: ['x', { name: 'x' }, 5], adapters: { installer: {} } }, '/');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SystemClientError);
      const details = (err as SystemClientError).details.join('\n');
      expect(details).toContain('/moduleId: must match pattern');
      expect(details).toContain('/adapters/installer: missing required key "type"');
      expect(details).toContain('/plugins/2');
    }
    expect(() => resolveConfig({ plugins: ['reset', 'reset'] }, '/')).toThrow(/plugin "reset" is listed twice/);
  });
});
