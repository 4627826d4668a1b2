/**
 * End-to-end set-up for firmware-update tests: a real mosquitto, a real HTTP server on loopback,
 * the daemon (in-process or spawned) with the firmware-update plugin, and EverestSim playing
 * EVerest with a heartbeat. Everything is stopped when the test ends.
 */
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { onTestFinished } from 'vitest';
import { startDaemon, spawnDaemon, tempDir, type RunningDaemon, type SpawnedDaemon } from '../helpers/daemon.js';
import { EverestSim, type EverestSide } from '../helpers/everest.js';
import { startHttpServer, type TestHttpServer } from '../helpers/http-server.js';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';

export type Fw = { firmware_update_status: string; request_id: number };

export interface Rig {
  broker: Broker;
  http: TestHttpServer;
  ev: EverestSide;
  stateDir: string;
  /** config without stateDir, to start the daemon again */
  config: Record<string, unknown>;
  /** firmware statuses received so far, as "Status" (or "Status#id" with ids) */
  fw(): Fw[];
  names(requestId?: number): string[];
  waitFw(status: string, requestId: number, timeoutMs?: number): Promise<Fw>;
  update(payload: Record<string, unknown>): Promise<string>;
  allow(): Promise<void>;
  /** simulated power adapter calls (JSON lines) */
  powerCalls(): Promise<string[]>;
}

export interface RigOptions {
  options?: Record<string, unknown>;
  installer?: Record<string, unknown>;
  /** extra plugins started with firmware-update */
  plugins?: unknown[];
  stateDir?: string;
}

export async function startRig(opts: RigOptions = {}): Promise<Rig> {
  const broker = await startMosquitto();
  onTestFinished(() => broker.stop());
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const ev = await EverestSim.connect(broker.url, { moduleId: 'system_api' });
  ev.startHeartbeat(200);
  const stateDir = opts.stateDir ?? tempDir('fw-state-');
  const config = {
    mqtt: { url: broker.url },
    adapters: {
      installer: opts.installer ?? { type: 'simulated', rebootRequired: false },
      power: { type: 'simulated' },
    },
    plugins: [{ name: 'firmware-update', options: { retryIntervalS: 0, ...opts.options } }, ...(opts.plugins ?? [])],
  };
  const fw = () => ev.statuses<Fw>('firmware_update_status');
  return {
    broker,
    http,
    ev,
    stateDir,
    config,
    fw,
    names: (id) => fw().filter((s) => id === undefined || s.request_id === id).map((s) => s.firmware_update_status),
    waitFw: (status, requestId, timeoutMs = 15_000) =>
      ev.waitForStatus<Fw>('firmware_update_status', (s) => s.firmware_update_status === status && s.request_id === requestId, timeoutMs),
    update: (payload) => ev.request<string>('update_firmware', payload, { timeoutMs: 5000 }),
    allow: () => ev.command('allow_firmware_installation'),
    powerCalls: async () => {
      try {
        const text = await fsp.readFile(path.join(stateDir, 'adapters', 'simulated-power', 'calls.jsonl'), 'utf8');
        return text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { action: string }).action);
      } catch {
        return [];
      }
    },
  };
}

/** The plugin's own state directory (persisted update record, downloaded image). */
export const pluginDir = (rig: Rig) => path.join(rig.stateDir, 'plugins', 'firmware-update');

/** Files the plugin keeps about an update: the record and images. */
export async function leftovers(rig: Rig): Promise<string[]> {
  const names = await fsp.readdir(pluginDir(rig)).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith('image-') || n.startsWith('job'));
}

/**
 * Resolves once the daemon has recorded that every status reached the broker (no undelivered
 * statuses left in its state). A kill before that makes the next run send them again, which is
 * right (at least once) but not what a test of another phase is about.
 */
export function allDelivered(rig: Rig): Promise<void> {
  const file = path.join(rig.stateDir, 'core', 'pending-statuses.json');
  return until(() => !existsSync(file), 10_000, 'the daemon to record delivery of its statuses');
}

/** Start the daemon in-process on the rig's state dir. */
export function runDaemon(rig: Rig, extra: Record<string, unknown> = {}): Promise<RunningDaemon> {
  return startDaemon({ ...rig.config, ...extra, stateDir: rig.stateDir });
}

/** Start the daemon as a child process on the rig's state dir (for kill -9). */
export async function spawnRigDaemon(rig: Rig, dir: string): Promise<SpawnedDaemon> {
  const d = await spawnDaemon({ ...rig.config, stateDir: rig.stateDir, log: { level: 'debug' } }, { dir });
  await d.waitForLog(/listening for EVerest requests/);
  return d;
}

/** Serve `bytes` random bytes (or the given buffer) at `/fw.bin`, return its URL. */
export function serveImage(rig: Rig, body: Buffer | number = 64 * 1024, name = '/fw.bin', faults = {}): { url: string; bytes: Buffer } {
  const bytes = typeof body === 'number' ? randomBytes(body) : body;
  rig.http.serve(name, bytes, faults);
  return { url: `${rig.http.url}${name}`, bytes };
}

/** An executable node script in `dir` (for the script installer). */
export function nodeScript(dir: string, name: string, source: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!${process.execPath}\n${source}\n`);
  chmodSync(file, 0o755);
  return file;
}

/** SHA-256 (hex) of file contents; undefined stays undefined. Comparing hashes keeps big buffers out of deep equality. */
export function sha256(data: Buffer | undefined): string | undefined {
  return data === undefined ? undefined : createHash('sha256').update(data).digest('hex');
}

/** Resolves when `cond` holds (polled every 20 ms). */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
