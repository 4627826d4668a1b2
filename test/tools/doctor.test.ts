/**
 * everest-system doctor against real parts: a real mosquitto (anonymous and with a password
 * file), the real rauc CLI (with and without its D-Bus service), the real journalctl, and
 * recording stand-ins for systemctl/timedatectl (which must never run here). Doctor must change
 * nothing: the stand-ins prove it only ran read-only sub-commands.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig, type ConfigInput } from '../../core/config.js';
import { formatReport, runDoctor, type CheckResult } from '../../core/doctor/index.js';
import { classifyConnectError } from '../../core/doctor/broker.js';
import { checkClock } from '../../core/doctor/system.js';
import { EverestSim } from '../helpers/everest.js';
import { REPO_ROOT, recordingStub, tempDir, SIMULATED_ADAPTERS } from '../helpers/daemon.js';
import { freePort, startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { startRauc } from '../helpers/rauc.js';

const SIMULATED = SIMULATED_ADAPTERS;

let broker: Broker;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

function config(input: ConfigInput, baseDir = REPO_ROOT) {
  return resolveConfig({ stateDir: tempDir('esc-doc-state-'), mqtt: { url: broker.url }, ...input }, baseDir, 'doctor test config');
}
const row = (rows: CheckResult[], check: string) => {
  const r = rows.find((x) => x.check === check);
  if (!r) throw new Error(`no row "${check}" in:\n${rows.map((x) => `${x.check} ${x.result} ${x.detail}`).join('\n')}`);
  return r;
};

describe('doctor', () => {
  it('simulated adapters, a real broker and EVerest beating: every row passes', async () => {
    const ev = await EverestSim.connect(broker.url);
    ev.startHeartbeat(100);
    const report = await runDoctor(config({ adapters: SIMULATED }), { heartbeatWaitMs: 10_000 });
    expect(report.rows.filter((r) => r.result !== 'PASS')).toEqual([]);
    expect(report.ok).toBe(true);
    expect(row(report.rows, 'EVerest heartbeat').detail).toMatch(/everest_api\/1\/system\/system_api\/e2m\/heartbeat = \d+/);
    expect(row(report.rows, 'broker').detail).toMatch(/^connected to mqtt:\/\/127\.0\.0\.1:\d+/);
    expect(row(report.rows, 'state dir').detail).toMatch(/writable/);
    for (const check of ['plugins', 'installer simulated', 'power simulated', 'clock simulated', 'log source system-snapshot', 'free space', 'clock']) row(report.rows, check);
  });

  it('without EVerest the heartbeat is a warning with a fix, and the board still passes', async () => {
    const stateDir = tempDir('esc-doc-state-');
    const report = await runDoctor(config({ adapters: SIMULATED, stateDir, moduleId: 'other_module', mqtt: { url: broker.url, externalPrefix: 'site1/' } }), { heartbeatWaitMs: 300 });
    const hb = row(report.rows, 'EVerest heartbeat');
    expect(hb.result).toBe('WARN');
    expect(hb.detail).toContain('site1/everest_api/1/system/other_module/e2m/heartbeat');
    expect(hb.fix).toMatch(/"other_module".*"site1\/"/);
    expect(report.ok).toBe(true);
    expect(readdirSync(stateDir)).toEqual([]); // the probe file is gone, nothing else was created
  });

  it('real rauc without its D-Bus service: the tool passes, the service fails with a fix', async () => {
    const dir = tempDir('esc-doc-');
    const report = await runDoctor(
      config({ plugins: ['firmware-update'], adapters: { installer: { type: 'rauc', busAddress: `unix:path=${dir}/no-bus.sock` }, power: { type: 'simulated' } } }),
      { heartbeatWaitMs: 0 },
    );
    expect(row(report.rows, 'installer rauc: rauc')).toMatchObject({ result: 'PASS', detail: expect.stringMatching(/^rauc \d/) });
    const service = row(report.rows, 'installer rauc: service');
    expect(service.result).toBe('FAIL');
    expect(service.detail).toMatch(/RAUC service does not answer on unix:path=.*no-bus\.sock/);
    expect(service.fix).toMatch(/start the RAUC service/);
    expect(report.rows.filter((r) => r.result === 'FAIL').map((r) => r.check)).toEqual(['installer rauc: service']);
    expect(report.ok).toBe(false);
  });

  it('real rauc with its service on a private bus: status is read (compatible, booted slot)', async () => {
    const rauc = await startRauc({ compatible: 'doctor-board' });
    try {
      const report = await runDoctor(
        config({ plugins: ['firmware-update'], adapters: { installer: { type: 'rauc', confPath: rauc.confPath, keyring: rauc.keyringPath, busAddress: rauc.busAddress }, power: { type: 'simulated' } } }),
        { heartbeatWaitMs: 0 },
      );
      expect(row(report.rows, 'installer rauc: service')).toMatchObject({ result: 'PASS', detail: expect.stringMatching(/compatible doctor-board, booted A, 2 slots/) });
      expect(row(report.rows, 'installer rauc: confPath').result).toBe('PASS');
      expect(row(report.rows, 'installer rauc: keyring').result).toBe('PASS');
      expect(report.ok).toBe(true);
    } finally {
      await rauc.stop();
    }
  });

  it('missing and failing tools are FAIL rows with fixes; only read-only sub-commands ran', async () => {
    const bin = tempDir('esc-doc-bin-');
    const systemctl = recordingStub(bin, 'systemctl', { stdout: 'LoadState=not-found\n' });
    const timedatectl = recordingStub(bin, 'timedatectl', { exitCode: 1, stderr: 'System has not been booted with systemd as init system (PID 1). Can\'t operate.\n' });
    const journal = tempDir('esc-doc-journal-');
    const report = await runDoctor(
      config({
        adapters: {
          installer: { type: 'script', command: ['/nonexistent/vendor-install', '{file}'], verify: ['vendor-verify-missing'] },
          power: { type: 'systemd', unit: 'everest.service' },
          clock: { type: 'timedatectl' },
          logSources: [{ type: 'journald', directory: journal, journalctl: 'journalctl-missing' }, { type: 'files', paths: [`${journal}/*.log`] }],
        },
      }),
      { env: { ...process.env, PATH: bin }, heartbeatWaitMs: 0 },
    );
    expect(row(report.rows, 'installer script: command')).toMatchObject({ result: 'FAIL', detail: 'command: /nonexistent/vendor-install does not exist' });
    expect(row(report.rows, 'installer script: verify')).toMatchObject({ result: 'FAIL', detail: expect.stringContaining('vendor-verify-missing is not on PATH') });
    expect(row(report.rows, 'power systemd: unit')).toMatchObject({ result: 'FAIL', fix: expect.stringContaining('adapters.power.unit') });
    const clock = row(report.rows, 'clock timedatectl: timedatectl');
    expect(clock.result).toBe('FAIL');
    expect(clock.detail).toContain('System has not been booted with systemd');
    expect(clock.fix).toMatch(/clock adapter "date"/);
    expect(row(report.rows, 'log source journald: journalctl')).toMatchObject({ result: 'FAIL', fix: expect.stringContaining('files') });
    expect(row(report.rows, 'log source files: paths').result).toBe('WARN');
    for (const r of report.rows.filter((x) => x.result !== 'PASS')) expect(r.fix, r.check).toBeTruthy();
    expect(report.ok).toBe(false);
    // nothing that changes the board was run
    expect(systemctl.calls()).toEqual([['--version'], ['show', '--property=LoadState', 'everest.service']]);
    expect(timedatectl.calls()).toEqual([['show']]);
    expect(formatReport(report)).toMatch(/installer script: command\s+FAIL\s+command: \/nonexistent\/vendor-install does not exist\n\s+fix: install the program/);
  });

  it('tools that are present and answer pass: systemctl stand-in, timedatectl stand-in, real journalctl, executable scripts', async () => {
    const bin = tempDir('esc-doc-bin-');
    recordingStub(bin, 'systemctl', { stdout: 'LoadState=loaded\n' });
    recordingStub(bin, 'timedatectl', { stdout: 'Timezone=Etc/UTC\nNTP=yes\nNTPSynchronized=yes\n' });
    const install = recordingStub(bin, 'vendor-install');
    const journal = tempDir('esc-doc-journal-');
    writeFileSync(path.join(journal, 'app.log'), 'line\n');
    const report = await runDoctor(
      config({
        adapters: {
          installer: { type: 'script', command: [install.path, '{file}'] },
          power: { type: 'systemd' },
          clock: { type: 'timedatectl' },
          logSources: [{ type: 'journald', directory: journal }, { type: 'files', paths: [`${journal}/*.log`] }],
        },
      }),
      { env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` }, heartbeatWaitMs: 0 },
    );
    expect(report.rows.filter((r) => r.result === 'FAIL')).toEqual([]);
    expect(row(report.rows, 'clock timedatectl: timedatectl').detail).toContain('NTPSynchronized=yes');
    expect(row(report.rows, 'power systemd: systemctl').detail).toContain('everest.service LoadState=loaded');
    expect(row(report.rows, 'log source journald: journalctl').detail).toMatch(/^systemd \d+/);
    expect(install.calls()).toEqual([]); // the install program is only looked up, never run
  });

  it('broker: unreachable, refused credentials and a plain client on a TLS port are told apart', async () => {
    const port = await freePort();
    const unreachable = await runDoctor(config({ adapters: SIMULATED, mqtt: { url: `mqtt://127.0.0.1:${port}` } }), { heartbeatWaitMs: 0 });
    expect(row(unreachable.rows, 'broker')).toMatchObject({ result: 'FAIL', detail: expect.stringMatching(/unreachable \(ECONNREFUSED\)/), fix: expect.stringMatching(/start the broker/) });
    expect(unreachable.ok).toBe(false);
    expect(unreachable.rows.find((r) => r.check === 'EVerest heartbeat')).toBeUndefined();

    const dir = tempDir('esc-doc-auth-');
    execFileSync('mosquitto_passwd', ['-c', '-b', path.join(dir, 'passwd'), 'alice', 's3cret']);
    const authBroker = await startMosquitto({ extraConfig: ['allow_anonymous false', `password_file ${path.join(dir, 'passwd')}`] });
    try {
      const refused = await runDoctor(config({ adapters: SIMULATED, mqtt: { url: authBroker.url, username: 'alice', password: 'wrong' } }), { heartbeatWaitMs: 0 });
      expect(row(refused.rows, 'broker')).toMatchObject({ result: 'FAIL', detail: expect.stringMatching(/refused the credentials/), fix: expect.stringMatching(/mqtt\.username and mqtt\.password/) });
      const accepted = await runDoctor(config({ adapters: SIMULATED, mqtt: { url: authBroker.url, username: 'alice', password: 's3cret' } }), { heartbeatWaitMs: 0 });
      expect(row(accepted.rows, 'broker')).toMatchObject({ result: 'PASS', detail: expect.stringMatching(/as alice$/) });
      expect(JSON.stringify(accepted)).not.toContain('s3cret');
    } finally {
      await authBroker.stop();
    }
    expect(classifyConnectError(Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }), 'mqtts://h:8883').fix).toMatch(/mqtt\.tls\.ca/);
  });

  it('clock: unset (1970) and far-future times fail', () => {
    expect(checkClock(new Date('1970-01-01T00:00:10Z')).result).toBe('FAIL');
    expect(checkClock(new Date('2150-01-01T00:00:00Z')).result).toBe('FAIL');
    expect(checkClock(new Date('2026-06-01T00:00:00Z')).result).toBe('PASS');
  });

  it('free space: a maxImageBytes larger than the disk fails', async () => {
    const report = await runDoctor(config({ adapters: SIMULATED, plugins: [{ name: 'firmware-update', options: { maxImageBytes: 2 ** 50 } }] }), { heartbeatWaitMs: 0 });
    expect(row(report.rows, 'free space')).toMatchObject({ result: 'FAIL', detail: expect.stringMatching(/need 1073741824 MiB for maxImageBytes/) });
  });
});
