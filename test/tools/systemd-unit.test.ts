/**
 * deploy/everest-system.service, checked statically (systemd never runs here, and the unit is
 * never installed): the settings the daemon relies on, and `systemd-analyze verify` offline.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../helpers/daemon.js';

const UNIT = readFileSync(path.join(REPO_ROOT, 'deploy/everest-system.service'), 'utf8');

/** section -> key -> values (a key may repeat) */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      out[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq).trim();
    ((out[section] ??= {})[key] ??= []).push(line.slice(eq + 1).trim());
  }
  return out;
}

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;

describe('systemd unit', () => {
  const unit = parseUnit(UNIT);
  const service = unit.Service!;
  const one = (k: string) => service[k]?.at(-1);

  it('is a notify service with a watchdog, restarted on failure, ordered after the broker and before EVerest', () => {
    expect(one('Type')).toBe('notify');
    // systemd-notify is a child process: main-only access would drop its messages
    expect(one('NotifyAccess')).toBe('all');
    expect(one('WatchdogSec')).toMatch(/^\d+s$/);
    expect(one('Restart')).toBe('on-failure');
    expect(unit.Unit!.After!.join(' ')).toContain('mosquitto.service');
    expect(unit.Unit!.Wants!.join(' ')).toContain('mosquitto.service');
    expect(unit.Unit!.Before!.join(' ')).toContain('everest.service');
    for (const k of ['Requires', 'BindsTo', 'PartOf']) expect(unit.Unit![k]?.join(' ') ?? '', k).not.toContain('everest');
    expect(one('StateDirectory')).toBe('everest-system');
    expect(unit.Install!.WantedBy).toEqual(['multi-user.target']);
  });

  it('runs the bundled build with the config from its ConfigurationDirectory', () => {
    const exec = one('ExecStart')!.split(/\s+/);
    expect(exec[1]).toMatch(/\/bin\/everest-system\.mjs$/); // the layout deploy/build-bundle.mjs writes
    expect(exec.slice(2, 5)).toEqual(['run', '--config', `/etc/${one('ConfigurationDirectory')}/plugins.config.json`]);
    // state dir of the profiles = StateDirectory
    const profile = JSON.parse(readFileSync(path.join(REPO_ROOT, 'profiles/rauc-systemd.json'), 'utf8')) as { stateDir: string };
    expect(profile.stateDir).toBe(`/var/lib/${one('StateDirectory')}`);
  });

  it('maps large buffers on their own so freed memory goes back to the system (the fuzz runs with it)', () => {
    expect(unit.Service!.Environment).toContain('MALLOC_MMAP_THRESHOLD_=65536');
  });

  it('hardening leaves installing, rebooting and setting the clock possible', () => {
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    // these would break SWUpdate/vendor installers (devices), the date clock adapter, or the V8 JIT
    for (const k of ['PrivateDevices', 'ProtectClock', 'MemoryDenyWriteExecute', 'ProtectSystem', 'SystemCallFilter', 'DynamicUser']) {
      expect(service[k], k).toBeUndefined();
    }
    expect(one('User') ?? 'root').toBe('root');
    expect(one('RestrictAddressFamilies')!.split(' ')).toEqual(expect.arrayContaining(['AF_UNIX', 'AF_INET', 'AF_INET6']));
  });

  it.skipIf(!hasSystemdAnalyze)('systemd-analyze verify accepts it without a single warning', () => {
    const dir = tempDir('esc-unit-');
    // verify checks that the ExecStart program exists: point it at this machine's node
    const copy = path.join(dir, 'everest-system.service');
    writeFileSync(copy, UNIT.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
    expect(r.stderr.trim()).toBe('');
    expect(r.status).toBe(0);
    // and it does complain about a mistyped key, so the check above means something
    writeFileSync(copy, UNIT.replace(/^WatchdogSec=/m, 'WatchdgSec='));
    expect(spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' }).stderr).toMatch(/Unknown key 'WatchdgSec'/);
  });
});
