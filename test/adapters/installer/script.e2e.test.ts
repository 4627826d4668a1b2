/**
 * The script installer inside the daemon, end to end: EverestSim over a real mosquitto asks for
 * an update served by a real HTTP server; a vendor script installs it and asks for a reboot; the
 * daemon restarts (the reboot) and the script's verify command decides Installed or InstallationFailed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startDaemon, tempDir } from '../../helpers/daemon.js';
import { EverestSim } from '../../helpers/everest.js';
import { startHttpServer } from '../../helpers/http-server.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { writeScript } from './util.js';

type Fw = { firmware_update_status: string; request_id: number };

async function rig(verifyExit: number) {
  const broker = await startMosquitto();
  onTestFinished(() => broker.stop());
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const ev = await EverestSim.connect(broker.url, { moduleId: 'system_api' });
  onTestFinished(() => ev.close());
  ev.startHeartbeat(200);
  const work = tempDir('script-e2e-');
  const image = randomBytes(32 * 1024);
  http.serve('/fw.bin', image);
  const installed = path.join(work, 'installed.bin');
  const install = writeScript(work, 'install.sh', `echo Installing\ncp "$1" '${installed}' || exit 1\necho InstallRebooting`);
  const verify = writeScript(work, 'verify.sh', `test -f '${installed}' || exit 9\necho "verify says ${verifyExit}"\nexit ${verifyExit}`);
  const config = {
    stateDir: path.join(work, 'state'),
    mqtt: { url: broker.url },
    adapters: { installer: { type: 'script', command: [install, '{file}'], verify: [verify] }, power: { type: 'simulated' } },
    plugins: [{ name: 'firmware-update', options: { retryIntervalS: 0 } }],
  };
  const fw = () => ev.statuses<Fw>('firmware_update_status');
  const waitFw = (status: string, id: number) =>
    ev.waitForStatus<Fw>('firmware_update_status', (s) => s.firmware_update_status === status && s.request_id === id, 30_000);
  const powerCalls = () => {
    try {
      return fs.readFileSync(path.join(config.stateDir, 'adapters', 'simulated-power', 'calls.jsonl'), 'utf8');
    } catch {
      return '';
    }
  };
  return { ev, http, image, installed, config, fw, waitFw, powerCalls };
}

describe('script installer in the daemon', () => {
  it('installs with the vendor script, reboots, and reports Installed once verify passes after the restart', async () => {
    const r = await rig(0);
    let daemon = await startDaemon(r.config);
    expect(await r.ev.request('update_firmware', { location: `${r.http.url}/fw.bin`, request_id: 41 })).toBe('Accepted');
    await r.waitFw('Downloaded', 41);
    await r.ev.command('allow_firmware_installation', undefined);
    await r.waitFw('InstallRebooting', 41);
    expect(fs.readFileSync(r.installed).equals(r.image)).toBe(true);
    await expect.poll(() => r.powerCalls(), { timeout: 10_000 }).toMatch(/reboot/);

    await daemon.stop();
    daemon = await startDaemon(r.config);
    onTestFinished(() => daemon.stop());
    await r.waitFw('Installed', 41);
    const names = r.fw().filter((s) => s.request_id === 41).map((s) => s.firmware_update_status);
    expect(names).toEqual(['Downloading', 'Downloaded', 'Installing', 'InstallRebooting', 'Installed']);
  });

  it('publishes a status the script prints while the script is still running', async () => {
    const r = await rig(0);
    const release = path.join(path.dirname(r.installed), 'release');
    const slow = writeScript(
      path.dirname(r.installed),
      'slow-install.sh',
      `cp "$1" '${r.installed}' || exit 1\necho InstallRebooting\nwhile [ ! -f '${release}' ]; do sleep 0.05; done`,
    );
    const daemon = await startDaemon({ ...r.config, adapters: { ...r.config.adapters, installer: { type: 'script', command: [slow, '{file}'] } } });
    onTestFinished(() => daemon.stop());
    expect(await r.ev.request('update_firmware', { location: `${r.http.url}/fw.bin`, request_id: 43 })).toBe('Accepted');
    await r.waitFw('Downloaded', 43);
    await r.ev.command('allow_firmware_installation', undefined);
    await r.waitFw('InstallRebooting', 43);
    // the script has not finished: nothing rebooted yet
    expect(r.powerCalls()).toBe('');
    fs.writeFileSync(release, '');
    await expect.poll(() => r.powerCalls(), { timeout: 10_000 }).toMatch(/reboot/);
    const names = r.fw().filter((s) => s.request_id === 43).map((s) => s.firmware_update_status);
    expect(names).toEqual(['Downloading', 'Downloaded', 'Installing', 'InstallRebooting']);
  });

  it('reports InstallationFailed after the restart when verify fails', async () => {
    const r = await rig(3);
    let daemon = await startDaemon(r.config);
    expect(await r.ev.request('update_firmware', { location: `${r.http.url}/fw.bin`, request_id: 42 })).toBe('Accepted');
    await r.waitFw('Downloaded', 42);
    await r.ev.command('allow_firmware_installation', undefined);
    await r.waitFw('InstallRebooting', 42);
    // the reboot itself, not the status the script printed on its way there
    await expect.poll(() => r.powerCalls(), { timeout: 10_000 }).toMatch(/reboot/);
    await daemon.stop();
    daemon = await startDaemon(r.config);
    onTestFinished(() => daemon.stop());
    await r.waitFw('InstallationFailed', 42);
    expect(r.fw().some((s) => s.request_id === 42 && s.firmware_update_status === 'Installed')).toBe(false);
    expect(daemon.logText()).toMatch(/verify command failed \(exit code 3\): verify says 3/);
  });
});
