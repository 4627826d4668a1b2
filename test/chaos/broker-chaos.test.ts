/**
 * Broker chaos: mosquitto is stopped at a random point of a firmware update and of a log upload
 * and started again on the same port after a random outage. Each cycle runs one firmware update
 * (throttled download from a loopback HTTP server, permission, simulated A/B install, reboot =
 * the daemon started again on the same state dir, Installed) and one log upload to the same
 * server. The outage point is chosen by a seeded PRNG among points of the sequence; the outage
 * length too.
 *
 * Pass: the daemon reconnects within 2 s of the broker's return, every operation reaches its
 * final status, EVerest's side sees that final status, and the statuses it did see for each
 * request follow the OCPP order.
 *
 *   CHAOS_SEED=<n> CHAOS_CYCLES=<n> npx vitest run test/chaos/broker-chaos.test.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { startHttpServer } from '../helpers/http-server.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { envInt, hold, seedFrom, sequenceProblem, until } from './chaos.js';

type Fw = { firmware_update_status: string; request_id: number };
type Log = { log_status: string; request_id: number };

const CYCLES = envInt('CHAOS_CYCLES', 10);
const POINTS = [
  'fw-downloading', // a random time into the throttled download
  'fw-downloaded', // EVerest saw Downloaded, before it allows the installation
  'fw-installing', // right after the daemon received allow_firmware_installation
  'fw-rebooting', // the power adapter was asked to reboot: the board reboots while the broker is down
  'fw-after-reboot', // the daemon has just started on the new firmware, before it confirms
  'log-accepted', // right after the upload_logs reply
  'log-uploading', // the archive is on its way to the HTTP server
] as const;
type Point = (typeof POINTS)[number];

const CONNECTED = 'connected to MQTT broker';

test(`broker stopped and restarted at random points, ${CYCLES} cycles`, { timeout: 60_000 + CYCLES * 30_000 }, async () => {
  const rand = seedFrom('CHAOS_SEED', 0xb0c4a05, 'broker-chaos');
  const broker = await startMosquitto();
  onTestFinished(() => broker.stop());
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const dir = tempDir('chaos-broker-');
  const logs = path.join(dir, 'logs');
  mkdirSync(logs);
  writeFileSync(path.join(logs, 'ocpp.log'), `${randomBytes(96 * 1024).toString('base64')}\n`);
  // the upload takes a while, so that the broker can go down during it
  http.route('/logs/', { delayMs: 500 });
  const config = {
    stateDir: path.join(dir, 'state'),
    // reconnect period and communication check at their defaults: the reconnect time is measured
    mqtt: { url: broker.url, reconnectPeriodMs: 1000 },
    // shorter than the longest outages, so that some outages also lose EVerest's heartbeat
    heartbeat: { timeoutMs: 2000 },
    communicationCheck: { intervalMs: 1000 },
    adapters: {
      installer: { type: 'simulated' },
      power: { type: 'simulated' },
      clock: { type: 'simulated' },
      logSources: [{ type: 'system-snapshot' }, { type: 'files', paths: [path.join(logs, '*.log')] }],
    },
    plugins: [
      { name: 'firmware-update', options: { retryIntervalS: 0 } },
      { name: 'log-upload', options: { stationId: 'CP-CHAOS', retryIntervalS: 0 } },
      'boot-reason',
    ],
  };
  let daemon: RunningDaemon = await startDaemon(config);
  const ev = await EverestSim.connect(broker.url, { moduleId: 'system_api' });
  ev.startHeartbeat(500);
  await daemon.waitForLog(/EVerest heartbeat seen/);

  /** log lines of the daemon that ran before the last reboot */
  let previous: RunningDaemon['logs'] = [];
  const order = rand.shuffle(POINTS);
  const figures: { cycle: number; point: Point; outageMs: number; daemonMs: number; everestMs: number }[] = [];

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const id = 100 + cycle;
    const point = order[cycle % order.length]!;
    const outageMs = rand.int(150, 3000);
    const offsetMs = rand.int(0, 900);
    const where = `cycle ${cycle} (request ${id}, point ${point}, outage ${outageMs} ms, seed ${rand.seed})`;
    console.log(`[broker-chaos] ${where}`);
    let outage: Promise<{ daemonMs: number; everestMs: number; daemonAt: number }> | undefined;

    /** the broker is stopped when this resolves; it comes back after outageMs in the background */
    const startOutage = async () => {
      await broker.stop();
      const down = Date.now();
      const evBack = new Promise<number>((resolve) => ev.client.once('connect', () => resolve(Date.now())));
      outage = (async () => {
        await hold(outageMs);
        await broker.start();
        const back = Date.now();
        // the daemon in charge now (a reboot may have replaced it during the outage)
        let connectedAt = 0;
        await until(
          () => {
            const line = daemon.logs.find((l) => l.msg === CONNECTED && Date.parse(String(l.time)) >= down);
            if (line) connectedAt = Date.parse(String(line.time));
            return line !== undefined;
          },
          15_000,
          `the daemon to reconnect (${where})`,
        );
        const everestAt = await evBack;
        return { daemonMs: Math.max(0, connectedAt - back), everestMs: Math.max(0, everestAt - back), daemonAt: connectedAt };
      })();
    };
    let started = false;
    const at = async (p: Point) => {
      if (p !== point || started) return;
      started = true;
      await startOutage();
    };

    const cycleStart = Date.now();
    try {
    const image = randomBytes(128 * 1024);
    http.serve(`/fw-${id}.bin`, image, { throttleBytesPerSec: 160 * 1024 });
    expect(await ev.request('update_firmware', { location: `${http.url}/fw-${id}.bin`, request_id: id }), where).toBe('Accepted');
    const logReply = await ev.request<{ upload_logs_status: string; file_name?: string }>('upload_logs', {
      location: `${http.url}/logs/`,
      request_id: id,
      retries: 3,
    });
    expect(logReply.upload_logs_status, where).toBe('Accepted');
    const logUploading = http
      .waitForRequest((r) => r.method === 'PUT' && r.url.includes(`_${id}_`), 30_000)
      .then(() => at('log-uploading'));
    await at('log-accepted');

    await ev.waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === id && s.firmware_update_status === 'Downloading', 20_000);
    if (point === 'fw-downloading') {
      await hold(offsetMs);
      await at('fw-downloading');
    }
    await ev.waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === id && s.firmware_update_status === 'Downloaded', 30_000);
    await at('fw-downloaded');
    // EVerest (libocpp) allows the installation once the image is ready; the log upload ends first
    // so that the reboot does not interrupt it
    await ev.waitForStatus<Log>('log_status', (s) => s.request_id === id && s.log_status === 'Uploaded', 30_000);
    await logUploading;
    if (outage) {
      // EVerest's permission is a QoS 0 command sent once: published while the broker is away it
      // is queued by EVerest's client and can reach the broker before the daemon has subscribed
      // again, and then nobody gets it. EVerest does not repeat it, so here EVerest allows once
      // the broker is back and the daemon listens again.
      const m = await outage;
      await until(() => daemon.logs.some((l) => l.msg === 'listening for EVerest requests' && Date.parse(String(l.time)) >= m.daemonAt), 15_000, `the daemon to listen again (${where})`);
    }
    await ev.command('allow_firmware_installation');
    if (point === 'fw-installing') {
      // QoS 0: a command still in flight when the broker stops is lost for EVerest and the daemon
      // alike; this point is the outage once the daemon has the permission
      await daemon.waitForLog((l) => l.msg === 'command' && l.op === 'allow_firmware_installation', 10_000);
    }
    await at('fw-installing');

    // the power adapter records the reboot; the board then reboots (the daemon starts again)
    await daemon.waitForLog((l) => l.msg === 'simulated reboot (nothing was restarted)', 30_000);
    await at('fw-rebooting');
    await daemon.stop();
    previous = daemon.logs;
    daemon = await startDaemon(config, { waitConnected: false });
    await at('fw-after-reboot');

    const installed = await ev
      .waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === id && ['Installed', 'InstallationFailed'].includes(s.firmware_update_status), 30_000)
      .catch((err: Error) => {
        throw new Error(`${where}: EVerest never saw the end of the update: ${err.message}; it saw [${ev.statuses<Fw>('firmware_update_status').filter((s) => s.request_id === id).map((s) => s.firmware_update_status).join(', ')}]`);
      });
    expect(installed.firmware_update_status, where).toBe('Installed');
    if (outage) {
      const { daemonMs, everestMs } = await outage;
      const m = { daemonMs, everestMs };
      figures.push({ cycle, point, outageMs, ...m });
      expect(m.daemonMs, `${where}: daemon reconnect time`).toBeLessThan(2000);
    }

    const fwSeen = ev.statuses<Fw>('firmware_update_status').filter((s) => s.request_id === id).map((s) => s.firmware_update_status);
    const logSeen = ev.statuses<Log>('log_status').filter((s) => s.request_id === id).map((s) => s.log_status);
    expect(sequenceProblem('firmware', fwSeen), where).toBeUndefined();
    expect(sequenceProblem('log', logSeen), where).toBeUndefined();
    expect(fwSeen.at(-1), where).toBe('Installed');
    expect(logSeen.at(-1), where).toBe('Uploaded');
    // the archive EVerest was told about arrived, once
    expect(http.uploads.filter((u) => u.name === logReply.file_name), where).toHaveLength(1);
    } catch (err) {
      // what the daemon did in this cycle, to read next to the failure
      const trace = [...previous, ...daemon.logs]
        .filter((l) => Date.parse(String(l.time)) >= cycleStart && /status|MQTT|heartbeat|reboot|listening/.test(String(l.msg)))
        .map((l) => `${String(l.time).slice(11)} ${String(l.msg)} ${l.firmware_update_status ?? l.log_status ?? ''} ${l.request_id ?? ''}`);
      console.log(`[broker-chaos] ${where} failed; daemon trace:\n${trace.join('\n')}\nEverestSim saw: ${ev.messages.filter((m) => m.at >= cycleStart && m.name !== 'communication_check').map((m) => `${new Date(m.at).toISOString().slice(11)} ${m.raw.toString()}`).join('\n')}`);
      throw err;
    }
  }

  const d = figures.map((f) => f.daemonMs).sort((a, b) => a - b);
  const e = figures.map((f) => f.everestMs).sort((a, b) => a - b);
  console.log(
    `[broker-chaos] ${figures.length} outages, daemon reconnect after the broker's return: median ${d[Math.floor(d.length / 2)]} ms, max ${d.at(-1)} ms; EverestSim: median ${e[Math.floor(e.length / 2)]} ms, max ${e.at(-1)} ms`,
  );
  console.log(`[broker-chaos] per cycle: ${JSON.stringify(figures)}`);
  expect(figures).toHaveLength(CYCLES);
});
