/**
 * Request/reply load against the daemon (a child process) through a real mosquitto: several
 * EVerest-like clients send requests at a target rate with pipelining (a bounded window of requests
 * in flight per client) and match every reply. Used by load.test.ts (CI size) and by
 * `npm run test:load` (LOAD_S=60 LOAD_RATE=5000).
 *
 * Broker: `set_tcp_nodelay true`; `max_queued_messages 0` and `max_queued_bytes 0` (no per-client
 * queue limit), because mosquitto's default of 1000 queued messages per client would drop messages
 * to a client that falls behind in a burst, and the point is to measure the daemon, not the broker.
 * Each client subscribes once to `m2e/reply/+` instead of once per request as EVerest does: at
 * thousands of requests per second the per-request SUBSCRIBE would measure the broker.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { REPO_ROOT } from '../helpers/daemon.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { latencySummary, MB, mb, rssOf } from './support.js';

export interface LoadOptions {
  seconds: number;
  /** target round trips per second, all clients together */
  rate: number;
  clients?: number;
  /** requests in flight per client at most */
  window?: number;
  ops?: ('is_reset_allowed' | 'get_boot_reason')[];
  logLevel?: string;
}

export interface LoadResult {
  targetRate: number;
  achievedRate: number;
  seconds: number;
  clients: number;
  window: number;
  ops: string[];
  sent: number;
  replied: number;
  lost: number;
  duplicates: number;
  wrong: number;
  latencyMs: { n: number; p50: number; p99: number; max: number };
  rssMB: { afterWarmup: number; end: number; max: number; samples: number[] };
  daemonAlive: boolean;
  logLevel: string;
  /** broker log lines about dropped messages */
  brokerDrops: string[];
  /** distinct messages the daemon logged at warn or above */
  daemonWarnings: string[];
  /** requests the daemon logged (log level info or lower) */
  daemonRequestLines: number;
  /** lost requests that the broker did deliver to another subscriber */
  lostSeenByTap: number;
  lostIds: string[];
}

const MODULE = 'system_api';
const BASE = `everest_api/1/system/${MODULE}/`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const clients = o.clients ?? 4;
  const window = o.window ?? 256;
  const ops = o.ops ?? ['is_reset_allowed'];
  const logLevel = o.logLevel ?? 'warn';
  const work = mkdtempSync(path.join(os.tmpdir(), 'load-'));
  const broker = await startMosquitto({ extraConfig: ['set_tcp_nodelay true', 'max_queued_messages 0', 'max_queued_bytes 0'] });
  const config = {
    moduleId: MODULE,
    stateDir: path.join(work, 'state'),
    mqtt: { url: broker.url },
    log: { level: logLevel },
    adapters: { installer: { type: 'simulated' }, power: { type: 'simulated' }, clock: { type: 'simulated' }, logSources: [{ type: 'system-snapshot' }] },
  };
  writeFileSync(path.join(work, 'config.json'), JSON.stringify(config));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'core/cli.ts'), 'run', '--config', path.join(work, 'config.json')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let warnings = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  let requestLines = 0;
  child.stdout!.on('data', (c: Buffer) => {
    const text = c.toString();
    requestLines += text.split('"msg":"request"').length - 1;
    if (warnings.length < 100_000) warnings += text.split('\n').filter((l) => !l.includes('"msg":"request"')).join('\n');
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const conns: MqttClient[] = [];
  try {
    // the daemon is ready when its communication check arrives
    const watcher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    conns.push(watcher);
    const ready = new Promise<void>((resolve) => watcher.on('message', () => resolve()));
    await watcher.subscribeAsync(`${BASE}m2e/communication_check`);
    await Promise.race([ready, sleep(60_000).then(() => Promise.reject(new Error(`daemon did not start:\n${stderr}`)))]);

    // a tap sees every request the broker delivers, to tell a lost request from a lost reply
    const tap = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    conns.push(tap);
    const tapSeen = new Set<string>();
    tap.on('message', (_t, raw) => {
      const m = /reply\/([^"]+)"/.exec(raw.toString());
      if (m) tapSeen.add(m[1]!);
    });
    await tap.subscribeAsync(`${BASE}e2m/+`, { qos: 0 });
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    let sent = 0;
    let replied = 0;
    let duplicates = 0;
    let wrong = 0;
    const inflight = new Array<number>(clients).fill(0);
    const expected: Record<string, (v: unknown) => boolean> = {
      is_reset_allowed: (v) => typeof v === 'boolean',
      get_boot_reason: (v) => typeof v === 'string',
    };
    const opOf = new Map<string, string>();
    // every client receives every reply (one wildcard each) and counts only its own ids
    const own = (c: number) => `c${c}-`;
    for (let c = 0; c < clients; c++) {
      const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId: `load-${c}-${process.pid}` });
      conns.push(client);
      client.on('message', (topic, raw) => {
        const id = topic.slice(topic.lastIndexOf('/') + 1);
        if (!id.startsWith(own(c))) return;
        const t = sentAt.get(id);
        if (t === undefined) {
          duplicates++;
          return;
        }
        latencies.push(performance.now() - t);
        sentAt.delete(id);
        replied++;
        inflight[c]!--;
        let v: unknown;
        try {
          v = JSON.parse(raw.toString());
        } catch {
          v = undefined;
        }
        if (!expected[opOf.get(id)!]!(v)) wrong++;
        opOf.delete(id);
      });
      await client.subscribeAsync(`${BASE}m2e/reply/+`, { qos: 0 });
    }

    const pid = child.pid!;
    const samples: number[] = [];
    let afterWarmup = 0;
    const tickMs = 5;
    const t0 = performance.now();
    let nextSample = t0 + 1000;
    let n = 0;
    const perClientRate = o.rate / clients;
    let due = 0;
    while (performance.now() - t0 < o.seconds * 1000) {
      const now = performance.now();
      due += (perClientRate * tickMs) / 1000;
      const batch = Math.floor(due);
      due -= batch;
      for (let c = 0; c < clients; c++) {
        const client = conns[c + 2]!;
        for (let i = 0; i < batch && inflight[c]! < window; i++) {
          const id = `${own(c)}${n++}`;
          const op = ops[n % ops.length]!;
          const body = op === 'is_reset_allowed' ? `{"headers":{"replyTo":"${BASE}m2e/reply/${id}"},"payload":"Soft"}` : `{"headers":{"replyTo":"${BASE}m2e/reply/${id}"}}`;
          sentAt.set(id, performance.now());
          opOf.set(id, op);
          inflight[c]!++;
          sent++;
          client.publish(`${BASE}e2m/${op}`, body, { qos: 0 });
        }
      }
      if (now >= nextSample) {
        const r = rssOf(pid) ?? 0;
        samples.push(r);
        if (samples.length === 1) afterWarmup = r;
        nextSample += 1000;
      }
      const wait = tickMs - (performance.now() - now);
      await sleep(Math.max(0, wait));
    }
    const elapsed = (performance.now() - t0) / 1000;
    const end = rssOf(pid) ?? 0;
    // drain: every reply still owed has 10 s to arrive
    const deadline = performance.now() + 10_000;
    while (sentAt.size > 0 && performance.now() < deadline) await sleep(20);
    const daemonAlive = child.exitCode === null && child.signalCode === null;
    return {
      targetRate: o.rate,
      achievedRate: Math.round(replied / elapsed),
      seconds: Math.round(elapsed * 10) / 10,
      clients,
      window,
      ops,
      sent,
      replied,
      lost: sentAt.size,
      duplicates,
      wrong,
      latencyMs: latencySummary(latencies),
      rssMB: { afterWarmup: mb(afterWarmup), end: mb(end), max: mb(Math.max(...samples, end)), samples: samples.map((s) => mb(s)) },
      daemonAlive,
      logLevel,
      daemonRequestLines: requestLines,
      lostSeenByTap: [...sentAt.keys()].filter((id) => tapSeen.has(id)).length,
      lostIds: [...sentAt.keys()].slice(0, 40),
      daemonWarnings: [...new Set(warnings.split('\n').filter(Boolean).map((l) => /"msg":"([^"]*)"/.exec(l)?.[1] ?? l.slice(0, 120)))].slice(0, 10),
      brokerDrops: broker.log().split('\n').filter((l) => /dropp/i.test(l)).slice(0, 5),
    };
  } finally {
    for (const c of conns) await c.endAsync(true).catch(() => undefined);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, sleep(8000)]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await broker.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** "flat": RSS at the end of the load within 48 MiB or 30 % of RSS after the first second */
export function memoryFlat(r: LoadResult): boolean {
  const base = r.rssMB.afterWarmup * MB;
  return r.rssMB.end * MB <= Math.max(base + 48 * MB, base * 1.3);
}
