/**
 * An EVerest that restarts before its heartbeat counted past its first value (a crash loop, or
 * a restart within the first interval) sends 0 after 0. Found by the EVerest chaos suite: the
 * daemon took the repeated 0 for "heartbeat back" and missed the restart, so it did not re-send
 * the running operation's status and answered get_boot_reason as if EVerest had not restarted.
 */
import { expect, onTestFinished, test } from 'vitest';
import { HeartbeatMonitor } from '../../core/heartbeat.js';
import { memoryLogger, startDaemon } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { startHttpServer } from '../helpers/http-server.js';
import { startMosquitto } from '../helpers/mosquitto.js';

test('the same counter value again is a restart', () => {
  const m = new HeartbeatMonitor(1000, memoryLogger().logger);
  const restarts: Array<{ previous: bigint; current: bigint }> = [];
  m.on('restart', (r) => restarts.push(r));
  m.onHeartbeat('0');
  m.onHeartbeat('0');
  m.onHeartbeat('1');
  m.onHeartbeat('1');
  expect(restarts).toEqual([
    { previous: 0n, current: 0n },
    { previous: 1n, current: 1n },
  ]);
  expect(m.restarts).toBe(2);
  m.stop();
});

test('EVerest restarting twice, the second time before its second heartbeat: the running status is re-sent both times', async () => {
  const broker = await startMosquitto();
  onTestFinished(() => broker.stop());
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  http.serve('/fw.bin', Buffer.alloc(4096, 1));
  const d = await startDaemon({
    mqtt: { url: broker.url },
    heartbeat: { timeoutMs: 400 },
    adapters: { installer: { type: 'simulated' }, power: { type: 'simulated' } },
    plugins: ['firmware-update', 'boot-reason'],
  });
  const ev1 = await EverestSim.connect(broker.url);
  ev1.startHeartbeat(100, 0n);
  await d.waitForLog(/EVerest heartbeat seen/);
  expect(await ev1.request('get_boot_reason')).toBe('PowerUp');
  await ev1.request('update_firmware', { location: `${http.url}/fw.bin`, request_id: 3 });
  // the image waits for allow_firmware_installation
  await ev1.waitForStatus('firmware_update_status', (s: { firmware_update_status: string }) => s.firmware_update_status === 'Downloaded');
  await ev1.close();
  // EVerest restarts, sends its first heartbeat, and dies again before the second
  const ev2 = await EverestSim.connect(broker.url);
  ev2.startHeartbeat(60_000, 0n);
  await ev2.waitForStatus('firmware_update_status', () => true, 5000);
  expect(d.daemon.everest.restarts).toBe(1);
  const mark = d.logs.length;
  await ev2.close();
  await d.waitForLog((l) => l.msg === 'EVerest heartbeat lost' && d.logs.indexOf(l) >= mark);
  // and starts once more
  const ev3 = await EverestSim.connect(broker.url);
  ev3.startHeartbeat(100, 0n);
  expect(await ev3.waitForStatus('firmware_update_status', () => true, 5000)).toEqual({ firmware_update_status: 'Downloaded', request_id: 3 });
  expect(d.daemon.everest.restarts).toBe(2);
  expect(await ev3.request('get_boot_reason')).toBe('ApplicationReset');
});
