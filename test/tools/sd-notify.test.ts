/**
 * sd_notify: the daemon tells systemd it is ready, pings the watchdog at half of WATCHDOG_USEC
 * and says STOPPING on SIGTERM, over a real AF_UNIX datagram socket; off systemd it is silent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSdNotifier, watchdogInterval } from '../../core/sdNotify.js';
import { memoryLogger, spawnDaemon, tempDir, SIMULATED_ADAPTERS } from '../helpers/daemon.js';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { startNotifySocket } from './notify-socket.js';

const SIMULATED = SIMULATED_ADAPTERS;

let broker: Broker;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

describe('sd_notify', () => {
  it('watchdog period is half of WATCHDOG_USEC, only for the process WATCHDOG_PID names', () => {
    expect(watchdogInterval({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000);
    expect(watchdogInterval({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000);
    expect(watchdogInterval({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '41' }, 42)).toBeUndefined();
    expect(watchdogInterval({}, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: 'x' }, 42)).toBeUndefined();
  });

  it('the daemon sends READY=1, WATCHDOG=1 pings and STOPPING=1 to NOTIFY_SOCKET', async () => {
    const sock = await startNotifySocket(tempDir('esc-sdn-'));
    const d = await spawnDaemon(
      { mqtt: { url: broker.url }, adapters: SIMULATED },
      { env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '300000' } },
    );
    const ready = await sock.waitFor(/READY=1/);
    expect(ready).toMatch(/STATUS=running/);
    // two pings at 150 ms after READY: the timer keeps going
    await sock.waitFor(/WATCHDOG=1/);
    await expect.poll(() => sock.messages.filter((m) => m === 'WATCHDOG=1').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(sock.messages.indexOf(ready)).toBeLessThan(sock.messages.indexOf('WATCHDOG=1'));
    d.kill('SIGTERM');
    await sock.waitFor(/STOPPING=1/);
    expect((await d.exited).code).toBe(0);
    const stoppingAt = sock.messages.indexOf('STOPPING=1');
    expect(sock.messages.slice(stoppingAt + 1)).not.toContain('WATCHDOG=1');
  });

  it('without NOTIFY_SOCKET nothing is sent and nothing is spawned', async () => {
    const mem = memoryLogger();
    const sd = createSdNotifier({ env: { PATH: '/nonexistent', WATCHDOG_USEC: '1000' }, log: mem.logger, command: 'systemd-notify' });
    expect(sd.enabled).toBe(false);
    await sd.ready();
    await sd.stopping();
    expect(mem.raw.join('\n')).not.toMatch(/sd_notify/);
  });

  it('a socket nobody listens on is a warning, logged once, never an error', async () => {
    const dir = tempDir('esc-sdn-');
    const mem = memoryLogger();
    const sd = createSdNotifier({ env: { ...process.env, NOTIFY_SOCKET: `${dir}/missing.sock` }, log: mem.logger });
    expect(sd.enabled).toBe(true);
    await sd.ready('x');
    await sd.status('y');
    await sd.stopping();
    const warnings = mem.lines.filter((l) => /sd_notify failed/.test(l.msg ?? ''));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.level).toBe(40);
  });
});
