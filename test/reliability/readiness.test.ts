/**
 * Found by the load test: the first requests, sent as soon as the daemon's first
 * communication_check appeared, were never answered. The daemon sent communication_check true
 * on connecting, while plugins were still starting and before it subscribed to e2m/+, so
 * EVerest could take it for ready while requests went nowhere. Now communication_check is only
 * sent once requests are listened to.
 */
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, startDaemon } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { startMosquitto } from '../helpers/mosquitto.js';

describe('readiness', () => {
  it('a request sent on the first communication_check is answered, even while a plugin is slow to start', async () => {
    const broker = await startMosquitto();
    try {
      const ev = await EverestSim.connect(broker.url);
      const watcher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
      const firstCheck = new Promise<void>((resolve) => watcher.once('message', () => resolve()));
      await watcher.subscribeAsync('everest_api/1/system/system_api/m2e/communication_check');
      const answered = firstCheck.then(() => ev.request('get_boot_reason', undefined, { timeoutMs: 5000 }));
      await startDaemon(
        { mqtt: { url: broker.url }, plugins: [{ name: 'slow-start', module: './test/reliability/assets/slow-start-plugin.ts', options: { startMs: 1000 } }], adapters: {} },
        { baseDir: REPO_ROOT, waitConnected: false },
      );
      expect(await answered).toBe('PowerUp');
      await watcher.endAsync(true);
    } finally {
      await broker.stop();
    }
  });

  it('a status published while plugins are still starting reaches a heartbeating EVerest exactly once', async () => {
    const broker = await startMosquitto();
    try {
      const ev = await EverestSim.connect(broker.url);
      ev.startHeartbeat(100);
      // plugins take longer to start than the heartbeat timeout: the wait for EVerest's heartbeat
      // must start when the daemon listens, not when it connects
      const d = await startDaemon(
        {
          mqtt: { url: broker.url },
          heartbeat: { timeoutMs: 400 },
          plugins: [{ name: 'slow-start', module: './test/reliability/assets/slow-start-plugin.ts', options: { startMs: 1200, publishOnStart: 5 } }],
          adapters: {},
        },
        { baseDir: REPO_ROOT, waitConnected: false },
      );
      await ev.waitForStatus('log_status', (s) => s.request_id === 5, 10_000);
      await d.waitForLog(/EVerest heartbeat seen/);
      // MQTT keeps one client's order: a re-sent status would arrive before this reply
      expect(await ev.request('get_boot_reason')).toBe('PowerUp');
      expect(ev.statuses('log_status')).toEqual([{ log_status: 'Uploading', request_id: 5 }]);
    } finally {
      await broker.stop();
    }
  });
});
