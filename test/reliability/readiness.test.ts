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
});
