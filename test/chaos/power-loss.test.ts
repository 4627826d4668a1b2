/**
 * Power-loss loop: the daemon runs as a child process on one fixed state dir and is killed with
 * SIGKILL at a seeded moment of a firmware update (throttled download, permission, simulated A/B
 * install, reboot, confirmation) or of a log upload; it is started again on the same state dir
 * and driven on to the end, as EVerest would (allow again when the image is reported ready again,
 * a new upload_logs after an interrupted one). A deliberate reboot (the power adapter was asked
 * for one) is a graceful restart of the daemon.
 *
 * Kill points (events, never fixed sleeps): after N bytes of the image are on disk (N seeded), at
 * DownloadPaused (the server drops the connection at a seeded byte offset), at Downloaded, right
 * after allow_firmware_installation, during the install (seeded delay within it), at the reboot,
 * while the new firmware is confirmed (seeded marker), during log collection, during the upload.
 *
 * Checked every cycle: no second install of the same request, Installed only after a reboot and
 * only with the installed image booted and confirmed, the download resumed with a Range request
 * from the bytes on disk, every *.json of the state dir parses (none moved aside as corrupt), no
 * image or log temp files left, and the state dir does not grow from cycle to cycle.
 *
 *   POWERLOSS_SEED=<n> POWERLOSS_CYCLES=<n> npx vitest run test/chaos/power-loss.test.ts
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { spawnDaemon, tempDir, type SpawnedDaemon } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { startHttpServer } from '../helpers/http-server.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { corruptStateFiles, envInt, filesUnder, hold, seedFrom, sequenceProblem, until } from './chaos.js';

type Fw = { firmware_update_status: string; request_id: number };
type Log = { log_status: string; request_id: number };

const POINTS = [
  'fw-bytes',
  'fw-paused',
  'fw-downloaded',
  'fw-allowed',
  'fw-installing',
  'fw-rebooting',
  'fw-confirming',
  'log-collecting',
  'log-uploading',
] as const;
type Point = (typeof POINTS)[number];

/** CI: 6 cycles (6 of the 9 points, chosen by the seed); on demand: POWERLOSS_CYCLES=50 */
const CYCLES = envInt('POWERLOSS_CYCLES', 6);
const IMAGE_BYTES = 160 * 1024;
const INSTALL_DELAY_MS = 800;
const LOG_FINAL = ['Uploaded', 'UploadFailure', 'PermissionDenied', 'BadMessage', 'NotSupportedOperation'];
const FW_FINAL = ['Installed', 'InstallationFailed', 'DownloadFailed', 'InstallVerificationFailed', 'InvalidSignature'];
/** what a state dir may hold between updates; anything else is a leftover */
const ALLOWED = [
  /^core\/(pending-statuses|next-boot-reason)\.json$/,
  /^plugins\/boot-reason\/boot\.json$/,
  /^plugins\/(firmware-update|log-upload|reset|system-time)\/[a-z-]+\.json$/,
  /^adapters\/simulated-installer\/(state\.json|slot-[ab])$/,
  /^adapters\/simulated-power\/calls\.jsonl$/,
  /^adapters\/simulated-clock\/[a-z-]+\.json$/,
];

test(`kill -9 at seeded moments of a firmware update and a log upload, ${CYCLES} cycles`, { timeout: 60_000 + CYCLES * 60_000 }, async () => {
  const rand = seedFrom('POWERLOSS_SEED', 0x9e3779b9 % 1_000_000_007, 'power-loss');
  const broker = await startMosquitto();
  onTestFinished(() => broker.stop());
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const dir = tempDir('chaos-power-');
  const stateDir = path.join(dir, 'state');
  const logs = path.join(dir, 'logs');
  mkdirSync(logs);
  writeFileSync(path.join(logs, 'ocpp.log'), `${randomBytes(48 * 1024).toString('base64')}\n`);
  // the upload takes a while, so that a kill can land in it
  http.route('/logs/', { delayMs: 1200 });
  const config = {
    stateDir,
    mqtt: { url: broker.url },
    log: { level: 'debug' },
    adapters: {
      installer: { type: 'simulated', installDelayMs: INSTALL_DELAY_MS },
      power: { type: 'simulated' },
      clock: { type: 'simulated' },
      logSources: [{ type: 'system-snapshot' }, { type: 'files', paths: [path.join(logs, '*.log')] }],
    },
    plugins: [
      { name: 'firmware-update', options: { retryIntervalS: 1 } },
      { name: 'log-upload', options: { stationId: 'CP-POWER', retryIntervalS: 0 } },
      'boot-reason',
    ],
  };
  const ev = await EverestSim.connect(broker.url, { moduleId: 'system_api' });
  ev.startHeartbeat(200);

  const spawnDir = path.join(dir, 'run');
  mkdirSync(spawnDir);
  const spawn = async () => {
    const d = await spawnDaemon(config, { dir: spawnDir });
    await d.waitForLog(/listening for EVerest requests/, 30_000);
    return d;
  };
  const powerCalls = () => {
    const f = path.join(stateDir, 'adapters', 'simulated-power', 'calls.jsonl');
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l.includes('"reboot"')).length : 0;
  };
  const imageOnDisk = () => {
    const p = path.join(stateDir, 'plugins', 'firmware-update');
    const name = existsSync(p) ? readdirSync(p).find((n) => n.startsWith('image-')) : undefined;
    return name ? statSync(path.join(p, name)).size : 0;
  };
  const simState = () => JSON.parse(readFileSync(path.join(stateDir, 'adapters', 'simulated-installer', 'state.json'), 'utf8')) as {
    booted: 'a' | 'b';
    primary: 'a' | 'b';
    slots: Record<'a' | 'b', { good: boolean }>;
  };
  const slotHolds = (slot: 'a' | 'b', image: Buffer) => {
    const f = path.join(stateDir, 'adapters', 'simulated-installer', `slot-${slot}`);
    return existsSync(f) && readFileSync(f).equals(image);
  };

  let d: SpawnedDaemon = await spawn();
  const order = rand.shuffle(POINTS);
  const report: string[] = [];
  let grown: number | undefined;

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const id = 300 + cycle;
    const point: Point = order[cycle % order.length]!;
    const killBytes = rand.int(8 * 1024, IMAGE_BYTES - 8 * 1024);
    const dropAt = rand.int(16 * 1024, IMAGE_BYTES - 16 * 1024);
    const installDelay = rand.int(0, INSTALL_DELAY_MS);
    const confirmMarker = rand.pick([/simulated installer: booted slot/, /confirmed the new firmware/, /"firmware_update_status":"Installed"/]);
    const detail =
      point === 'fw-bytes' ? `after ${killBytes} bytes` : point === 'fw-paused' ? `drop at ${dropAt} bytes` : point === 'fw-installing' ? `${installDelay} ms into the install` : point === 'fw-confirming' ? `at ${confirmMarker.source}` : '';
    const where = `cycle ${cycle} (request ${id}, kill ${point} ${detail}, seed ${rand.seed})`;
    console.log(`[power-loss] ${where}`);

    const fwPath = `/fw-${id}.bin`;
    const image = randomBytes(IMAGE_BYTES);
    http.serve(fwPath, image, { throttleBytesPerSec: 128 * 1024, ...(point === 'fw-paused' ? { dropAfterBytes: dropAt } : {}) });
    /** every daemon output of this cycle (the current one last) */
    const outputs: SpawnedDaemon[] = [d];
    const cycleOutput = () => outputs.map((o) => o.output()).join('\n');
    const rebootsAtStart = powerCalls();
    let rebootsHandled = rebootsAtStart;
    let killed = false;
    let bytesAtKill = -1;
    let requestsBeforeRestart = 0;
    const restart = async (signal: 'SIGKILL' | 'SIGTERM') => {
      d.kill(signal);
      const exit = await d.exited;
      if (signal === 'SIGTERM') expect(exit.code, `${where}: graceful stop for the reboot`).toBe(0);
      d = await spawn();
      outputs.push(d);
    };
    const kill = async () => {
      killed = true;
      d.kill('SIGKILL');
      await d.exited;
      bytesAtKill = imageOnDisk();
      requestsBeforeRestart = http.requestsTo(fwPath).length;
      report.push(`cycle ${cycle}: ${point} ${detail}`.trim());
      d = await spawn();
      outputs.push(d);
    };

    expect(await ev.request('update_firmware', { location: `${http.url}${fwPath}`, request_id: id, retries: 5, retry_interval_s: 1 }), where).toBe('Accepted');
    let logId = 5000 + cycle * 10;
    const requestLog = async () => {
      const reply = await ev.request<{ upload_logs_status: string }>('upload_logs', { location: `${http.url}/logs/`, request_id: logId, retries: 2 });
      expect(reply.upload_logs_status, where).toBe('Accepted');
    };
    await requestLog();
    const firstLogId = logId;

    const fwSeen = () => ev.statuses<Fw>('firmware_update_status').filter((s) => s.request_id === id).map((s) => s.firmware_update_status);
    const logFinal = () => ev.statuses<Log>('log_status').find((s) => s.request_id === logId && LOG_FINAL.includes(s.log_status))?.log_status;
    let allowedAt = 0; // how many Downloaded EVerest had seen when it last allowed
    let installingSeenAt = 0;

    try {
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (Date.now() > deadline) throw new Error(`no end within 90 s; EVerest saw [${fwSeen().join(', ')}], log ${logId}: ${logFinal() ?? 'running'}`);
        const out = d.output();
        // ---- the kill, when its moment has come
        if (!killed) {
          const now =
            (point === 'fw-bytes' && imageOnDisk() >= killBytes) ||
            (point === 'fw-paused' && /"firmware_update_status":"DownloadPaused"/.test(out)) ||
            (point === 'fw-downloaded' && fwSeen().includes('Downloaded')) ||
            (point === 'log-collecting' && /"log_status":"Uploading"/.test(out)) ||
            (point === 'log-uploading' && http.requests.some((r) => r.method === 'PUT' && r.url.includes(`_${firstLogId}_`))) ||
            (point === 'fw-installing' && installingSeenAt > 0 && Date.now() - installingSeenAt >= installDelay) ||
            (point === 'fw-confirming' && powerCalls() > rebootsAtStart && outputs.length >= 2 && confirmMarker.test(out));
          if (point === 'fw-installing' && installingSeenAt === 0 && /"firmware_update_status":"Installing"/.test(out)) installingSeenAt = Date.now();
          if (now) {
            await kill();
            continue;
          }
        }
        // ---- the end
        const fw = fwSeen();
        const fwEnd = fw.find((s) => FW_FINAL.includes(s));
        const log = logFinal();
        if (fwEnd && log === 'Uploaded') break;
        // ---- a reboot asked of the power adapter: the board restarts (the kill may be it)
        if (powerCalls() > rebootsHandled) {
          rebootsHandled = powerCalls();
          if (point === 'fw-rebooting' && !killed) await kill();
          else await restart('SIGTERM');
          continue;
        }
        // ---- EVerest's part: a new upload after a failed one; allow once the image is ready
        if (log && log !== 'Uploaded') {
          expect(logId - firstLogId, `${where}: upload attempts`).toBeLessThan(3);
          logId += 1;
          await requestLog();
          continue;
        }
        const downloaded = fw.filter((s) => s === 'Downloaded').length;
        if (fw.at(-1) === 'Downloaded' && downloaded > allowedAt && log === 'Uploaded') {
          allowedAt = downloaded;
          await ev.command('allow_firmware_installation');
          if (point === 'fw-allowed' && !killed) await kill();
          continue;
        }
        await hold(25);
      }
    } catch (err) {
      console.log(`[power-loss] ${where} failed; daemon outputs:\n${cycleOutput().split('\n').filter((l) => /"msg":"(status|.*install.*|.*reboot.*|.*download.*|.*upload.*|.*interrupted.*|.*confirm.*)"/i.test(l)).map((l) => l.slice(0, 260)).join('\n')}`);
      throw err;
    }

    // ---------------------------------------------------------------- invariants of this cycle
    const fw = fwSeen();
    const fwEnd = fw.find((s) => FW_FINAL.includes(s))!;
    expect(sequenceProblem('firmware', fw), where).toBeUndefined();
    expect(fw.filter((s) => FW_FINAL.includes(s)), `${where}: one end state`).toEqual([fwEnd]);
    // no double install: the simulated installer wrote a slot at most once for this request
    const writes = cycleOutput().split('\n').filter((l) => l.includes('simulated installer: writing image to slot')).length;
    expect(writes, `${where}: installs of request ${id}`).toBeLessThanOrEqual(1);
    const sim = simState();
    if (fwEnd === 'Installed') {
      // only after a reboot, with the new image booted and confirmed
      expect(powerCalls(), `${where}: Installed without a reboot`).toBeGreaterThan(rebootsAtStart);
      expect(slotHolds(sim.booted, image), `${where}: Installed but slot ${sim.booted} (booted) does not hold the image`).toBe(true);
      expect(sim.slots[sim.booted].good, `${where}: Installed but the booted slot is not confirmed`).toBe(true);
      expect(writes, where).toBe(1);
    } else {
      // a failure is only acceptable where the install itself was interrupted, and must be true
      expect(fwEnd, where).toBe('InstallationFailed');
      expect(['fw-allowed', 'fw-installing', 'fw-rebooting', 'fw-confirming'], `${where}: ${fwEnd}`).toContain(point);
      const runsConfirmed = slotHolds(sim.booted, image) && sim.slots[sim.booted].good;
      expect(runsConfirmed, `${where}: InstallationFailed reported but the new image runs, confirmed`).toBe(false);
    }
    // a download killed midway resumed from the bytes on disk
    if (killed && (point === 'fw-bytes' || point === 'fw-paused') && bytesAtKill > 0) {
      const next = http.requestsTo(fwPath)[requestsBeforeRestart];
      expect(next?.headers.range, `${where}: ${bytesAtKill} bytes were on disk`).toBe(`bytes=${bytesAtKill}-`);
      // a file that was already complete is confirmed by a 416 naming its size
      expect(next?.status, `${where}: ${bytesAtKill} of ${IMAGE_BYTES} bytes were on disk`).toBe(bytesAtKill >= IMAGE_BYTES ? 416 : 206);
    }
    // the log: truthful end states, the uploaded archive arrived
    for (let l = firstLogId; l <= logId; l++) {
      const seen = ev.statuses<Log>('log_status').filter((s) => s.request_id === l).map((s) => s.log_status);
      expect(sequenceProblem('log', seen), `${where}: log ${l}`).toBeUndefined();
    }
    expect(http.uploads.filter((u) => u.name.includes(`_${logId}_`)), where).toHaveLength(1);
    if (killed && point.startsWith('log-') && logId === firstLogId) {
      // the interrupted request was not reported as anything but finished truthfully
      expect(ev.statuses<Log>('log_status').filter((s) => s.request_id === firstLogId).at(-1)?.log_status, where).toBe('Uploaded');
    }
    // the state dir: parses, no leftovers, does not grow
    await until(() => !existsSync(path.join(stateDir, 'plugins', 'firmware-update', 'job.json')), 10_000, `the update record to go (${where})`);
    expect(corruptStateFiles(stateDir), where).toEqual([]);
    const files = filesUnder(stateDir);
    // an atomic write of the running daemon may be under way (its temp file names carry its pid)
    const inFlight = new RegExp(`\\.${d.child.pid}\\.[0-9a-z]+\\.tmp$`);
    expect(files.filter((f) => !ALLOWED.some((re) => re.test(f)) && !inFlight.test(f)), `${where}: leftovers`).toEqual([]);
    expect(readdirSync(path.join(stateDir, 'plugins', 'log-upload', 'tmp')), `${where}: log temp files`).toEqual([]);
    // pending-statuses.json comes and goes with every status: one file, never more
    const kept = files.filter((f) => !inFlight.test(f) && f !== 'core/pending-statuses.json');
    if (cycle >= 2) {
      grown ??= kept.length;
      expect(kept.length, `${where}: state dir files ${kept.join(' ')}`).toBeLessThanOrEqual(grown);
    }
  }
  console.log(`[power-loss] ${CYCLES} cycles, seed ${rand.seed}; kills: ${report.join('; ')}`);
});
