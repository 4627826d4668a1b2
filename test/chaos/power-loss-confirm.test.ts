/**
 * Found by the power-loss loop (kill at "simulated installer: booted slot" after the firmware
 * reboot, POWERLOSS_SEED=654435755, cycle 6): power lost after the installer's confirm() had
 * committed the new image (slot marked good) but before the plugin persisted the end of the
 * update. The next start finds the record in phase `confirming` and reports InstallationFailed,
 * although the board runs the new image, committed. Reproduced here deterministically: the
 * killed boot is replayed on the state dir (record in `confirming`, confirm() done), then the
 * daemon starts.
 *
 * Expected: Installed (the new image is booted and committed): the next start confirms again
 * (confirming is idempotent), at most a few times.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import simulated from '../../adapters/installer/simulated.js';
import { memoryLogger, startDaemon, tempDir } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { startHttpServer } from '../helpers/http-server.js';
import { startMosquitto } from '../helpers/mosquitto.js';

type Fw = { firmware_update_status: string; request_id: number };

test('power lost right after confirm() committed the new image: the next start reports Installed', async () => {
  const broker = await startMosquitto();
  onTestFinished(() => broker.stop());
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const image = Buffer.alloc(32 * 1024, 7);
  http.serve('/fw.bin', image);
  const stateDir = tempDir('chaos-confirm-');
  const config = {
    stateDir,
    mqtt: { url: broker.url },
    adapters: { installer: { type: 'simulated' }, power: { type: 'simulated' } },
    plugins: ['firmware-update'],
  };
  const ev = await EverestSim.connect(broker.url);
  ev.startHeartbeat(100);
  const wait = (status: string) =>
    ev.waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === 9 && s.firmware_update_status === status, 15_000);

  const d1 = await startDaemon(config);
  expect(await ev.request('update_firmware', { location: `${http.url}/fw.bin`, request_id: 9 })).toBe('Accepted');
  await wait('Downloaded');
  await ev.command('allow_firmware_installation');
  await wait('InstallRebooting');
  await d1.waitForLog(/simulated reboot/);
  await d1.stop();

  // the boot that lost power: the record went to `confirming`, the installer committed the image
  const jobFile = path.join(stateDir, 'plugins', 'firmware-update', 'job.json');
  const job = JSON.parse(await fsp.readFile(jobFile, 'utf8')) as { phase: string; confirmData: Record<string, unknown> };
  expect(job.phase).toBe('rebooting');
  await fsp.writeFile(jobFile, JSON.stringify({ ...job, phase: 'confirming' }));
  const installer = await simulated.create({ rebootRequired: true, failInstall: false, installDelayMs: 0 }, { log: memoryLogger().logger, stateDir, env: {} });
  expect((await installer.confirm(job.confirmData)).result).toBe('installed');
  const sim = JSON.parse(await fsp.readFile(path.join(stateDir, 'adapters', 'simulated-installer', 'state.json'), 'utf8')) as {
    booted: 'a' | 'b';
    slots: Record<'a' | 'b', { good: boolean }>;
  };
  expect(sim.slots[sim.booted].good).toBe(true);
  expect(await fsp.readFile(path.join(stateDir, 'adapters', 'simulated-installer', `slot-${sim.booted}`))).toEqual(image);

  // the next start must tell the truth
  await startDaemon(config);
  const end = await ev.waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === 9 && ['Installed', 'InstallationFailed'].includes(s.firmware_update_status), 15_000);
  expect(end.firmware_update_status).toBe('Installed');
});
