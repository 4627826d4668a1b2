/**
 * EVerest chaos: EVerest's side goes away and comes back while operations run. Either its
 * heartbeat stops (EVerest hangs, its MQTT connection stays) or its whole MQTT client goes away
 * (EVerest restarts); then it comes back with the heartbeat counting from 0, as a restarted
 * EVerest does, and asks get_boot_reason as it does at every start-up.
 *
 * Pass: the latest status of each running operation arrives again after the return, the
 * communication check is there for the new EVerest, get_boot_reason answers ApplicationReset
 * (nothing commanded a reset), and every operation still ends right (Installed after the
 * firmware reboot, with FirmwareUpdate as the next boot reason; Uploaded for logs).
 *
 *   CHAOS_SEED=<n> EVEREST_CHAOS_CYCLES=<n> npx vitest run test/chaos/everest-chaos.test.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { startDaemon, tempDir, type LogLine, type RunningDaemon } from '../helpers/daemon.js';
import { EverestSim, type EverestSide } from '../helpers/everest.js';
import { startHttpServer } from '../helpers/http-server.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { envInt, hold, seedFrom, sequenceProblem } from './chaos.js';

type Fw = { firmware_update_status: string; request_id: number };
type Log = { log_status: string; request_id: number };

const CYCLES = envInt('EVEREST_CHAOS_CYCLES', 4);
const HEARTBEAT_MS = 250;
const TIMEOUT_MS = 1500;
const COMM_CHECK_MS = 500;

/** when EVerest goes away */
const PHASES = ['downloading', 'awaiting-permission'] as const;
/** how: heartbeat stops on a live connection, or the whole client goes and a new one comes */
const MODES = ['hang', 'restart'] as const;

test(`EVerest goes away and comes back during operations, ${CYCLES} cycles`, { timeout: 60_000 + CYCLES * 40_000 }, async () => {
  const rand = seedFrom('CHAOS_SEED', 0xe7e2e57, 'everest-chaos');
  const broker = await startMosquitto();
  onTestFinished(() => broker.stop());
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const dir = tempDir('chaos-everest-');
  mkdirSync(path.join(dir, 'logs'));
  writeFileSync(path.join(dir, 'logs', 'ocpp.log'), 'BootNotification\n');
  const config = {
    stateDir: path.join(dir, 'state'),
    mqtt: { url: broker.url },
    heartbeat: { timeoutMs: TIMEOUT_MS },
    communicationCheck: { intervalMs: COMM_CHECK_MS },
    adapters: {
      installer: { type: 'simulated' },
      power: { type: 'simulated' },
      clock: { type: 'simulated' },
      logSources: [{ type: 'files', paths: [path.join(dir, 'logs', '*.log')] }],
    },
    plugins: [
      { name: 'firmware-update', options: { retryIntervalS: 0 } },
      { name: 'log-upload', options: { stationId: 'CP-CHAOS', retryIntervalS: 0 } },
      'boot-reason',
      'reset',
    ],
  };
  let daemon: RunningDaemon = await startDaemon(config);
  let ev: EverestSide = await EverestSim.connect(broker.url);
  const beat = (from: bigint) => ev.startHeartbeat(HEARTBEAT_MS, from);
  beat(0n);
  // a fresh board: EVerest's first question at start-up
  expect(await ev.request('get_boot_reason')).toBe('PowerUp');

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const id = 200 + cycle;
    const phase = PHASES[cycle % PHASES.length]!;
    const mode = rand.pick(MODES);
    const gapMs = mode === 'hang' ? TIMEOUT_MS + rand.int(100, 1500) : rand.int(200, TIMEOUT_MS + 1500);
    const where = `cycle ${cycle} (request ${id}, ${phase}, ${mode}, away ${gapMs} ms, seed ${rand.seed})`;
    console.log(`[everest-chaos] ${where}`);
    const fwOf = (e: EverestSide) => e.statuses<Fw>('firmware_update_status').filter((s) => s.request_id === id);
    const logOf = (e: EverestSide) => e.statuses<Log>('log_status').filter((s) => s.request_id === id);

    // a download slow enough to still run after EVerest's return when it goes away in it
    const size = phase === 'downloading' ? 320 * 1024 : 48 * 1024;
    http.serve(`/fw-${id}.bin`, randomBytes(size), { throttleBytesPerSec: phase === 'downloading' ? 64 * 1024 : 512 * 1024 });
    // the log upload is still running when EVerest comes back
    http.route(`/logs-${id}/`, { delayMs: gapMs + 2500 });
    expect(await ev.request('update_firmware', { location: `${http.url}/fw-${id}.bin`, request_id: id }), where).toBe('Accepted');
    expect((await ev.request<{ upload_logs_status: string }>('upload_logs', { location: `${http.url}/logs-${id}/`, request_id: id })).upload_logs_status, where).toBe('Accepted');
    await ev.waitForStatus<Log>('log_status', (s) => s.request_id === id && s.log_status === 'Uploading');
    await ev.waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === id && s.firmware_update_status === (phase === 'downloading' ? 'Downloading' : 'Downloaded'), 20_000);

    // EVerest goes away
    const sides = [ev];
    const restartsBefore = daemon.daemon.everest.restarts;
    if (mode === 'hang') {
      ev.stopHeartbeat();
      await daemon.waitForLog((l) => l.msg === 'EVerest heartbeat lost' && Date.parse(String(l.time)) >= Date.now() - TIMEOUT_MS * 3, TIMEOUT_MS * 4);
      await hold(gapMs - TIMEOUT_MS);
    } else {
      await ev.close();
      await hold(gapMs);
      ev = await EverestSim.connect(broker.url);
      sides.push(ev);
    }
    // ... and comes back, counting from 0 again
    const mark = ev.messages.length;
    const backAt = Date.now();
    const lastFwBefore = lastPublished(daemon.logs, 'firmware_update_status', id);
    beat(0n);
    await daemon.waitForLog((l) => l.msg === 'EVerest restarted (heartbeat counter went back)' && daemon.daemon.everest.restarts > restartsBefore, 5000);

    // the latest status of both running operations arrives again
    const fwAgain = await ev.nextMessage((m) => m.name === 'firmware_update_status' && (m.value as Fw).request_id === id, 5000, `firmware status again (${where})`, mark);
    const logAgain = await ev.nextMessage((m) => m.name === 'log_status' && (m.value as Log).request_id === id, 5000, `log status again (${where})`, mark);
    // it is the latest the daemon had published by then (or a newer one)
    expect(rank((fwAgain.value as Fw).firmware_update_status), where).toBeGreaterThanOrEqual(rank(lastFwBefore ?? 'Downloading'));
    expect((logAgain.value as Log).log_status, where).toBe('Uploading');
    // the communication check is there for the returned EVerest, at its interval
    const check = await ev.nextMessage((m) => m.name === 'communication_check', COMM_CHECK_MS * 3, `communication_check (${where})`, mark);
    expect(check.raw.toString()).toBe('true');
    expect(check.at - backAt, where).toBeLessThan(COMM_CHECK_MS * 3);
    // EVerest asks why it started: nothing commanded a reset
    expect(await ev.request('get_boot_reason'), where).toBe('ApplicationReset');

    // drive both operations to their end
    await ev.waitForStatus<Log>('log_status', (s) => s.request_id === id && s.log_status === 'Uploaded', 20_000);
    await ev.waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === id && s.firmware_update_status === 'Downloaded', 30_000);
    await ev.command('allow_firmware_installation');
    await ev.waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === id && s.firmware_update_status === 'InstallRebooting', 20_000);
    await daemon.waitForLog((l) => l.msg === 'simulated reboot (nothing was restarted)', 10_000);
    // the board reboots: the daemon and EVerest start again
    await daemon.stop();
    await ev.close();
    daemon = await startDaemon(config);
    ev = await EverestSim.connect(broker.url);
    beat(0n);
    expect(await ev.request('get_boot_reason'), where).toBe('FirmwareUpdate');
    await ev.waitForStatus<Fw>('firmware_update_status', (s) => s.request_id === id && s.firmware_update_status === 'Installed', 20_000);

    // what each EVerest instance saw follows the OCPP order; the one after the reboot sees Installed once
    for (const side of sides) {
      expect(sequenceProblem('firmware', fwOf(side).map((s) => s.firmware_update_status)), where).toBeUndefined();
      expect(sequenceProblem('log', logOf(side).map((s) => s.log_status)), where).toBeUndefined();
    }
    expect(logOf(sides.at(-1)!).at(-1)?.log_status, where).toBe('Uploaded');
    expect(fwOf(ev).map((s) => s.firmware_update_status), where).toEqual(['Installed']);
  }
});

const FW_ORDER = ['Downloading', 'DownloadPaused', 'Downloaded', 'Installing', 'InstallRebooting', 'Installed'];
const rank = (s: string) => Math.max(0, FW_ORDER.indexOf(s === 'DownloadPaused' ? 'Downloading' : s));

/** the last status of `topic` for `id` the daemon published (its "status" log lines) */
function lastPublished(logs: LogLine[], topic: string, id: number): string | undefined {
  const line = logs.filter((l) => l.msg === 'status' && l.topic === topic && l.request_id === id).at(-1);
  return (line?.firmware_update_status ?? line?.log_status) as string | undefined;
}
