/**
 * Footprint of the daemon against its baseline, a bare mqtt.js client that only subscribes to the
 * e2m topics, publishes `communication_check true` every second and answers get_boot_reason
 * directly. Both run as child processes against one mosquitto (`set_tcp_nodelay true`, else
 * Nagle's delay hides everything else) in the same run:
 *
 *   - start-up: spawn -> first m2e/communication_check seen by a subscriber (median of BENCH_STARTS)
 *   - idle: RSS and CPU time over BENCH_IDLE_S seconds (default 60) with EVerest's heartbeat at 1 Hz
 *   - round trip: get_boot_reason request -> reply, one at a time (BENCH_RTT requests each)
 *
 * The daemon runs from dist/ (built here with tsc first); if the build fails it runs through tsx,
 * and the result says which. Targets: idle RSS <= 1.3x, start-up <= 1.3x, round trip <= 1.2x.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { cpuMsOf, latencySummary, mb, rssOf } from '../test/reliability/support.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const BARE = (mqttUrl: string) => `
import mqtt from ${JSON.stringify(mqttUrl)};
const [url, moduleId] = process.argv.slice(2);
const base = 'everest_api/1/system/' + moduleId + '/';
const client = mqtt.connect(url, { clean: true, reconnectPeriod: 1000 });
let timer;
client.on('connect', () => {
  client.subscribe(base + 'e2m/+', { qos: 0 });
  const send = () => client.publish(base + 'm2e/communication_check', 'true', { qos: 0 });
  send();
  clearInterval(timer);
  timer = setInterval(send, 1000);
});
const answers = { get_boot_reason: '"PowerUp"', is_reset_allowed: 'true' };
client.on('message', (topic, payload) => {
  const answer = answers[topic.slice(base.length + 4)];
  if (answer === undefined) return;
  try {
    const replyTo = JSON.parse(payload.toString()).headers.replyTo;
    if (typeof replyTo === 'string') client.publish(replyTo, answer, { qos: 0 });
  } catch {}
});
process.on('SIGTERM', () => client.end(true, () => process.exit(0)));
`;

interface Proc {
  child: ChildProcess;
  moduleId: string;
  stop(): Promise<void>;
}

export default async function footprint(): Promise<Record<string, unknown>> {
  const idleS = Number(process.env.BENCH_IDLE_S ?? 60);
  const starts = Number(process.env.BENCH_STARTS ?? 5);
  const rtts = Number(process.env.BENCH_RTT ?? 2000);
  const work = mkdtempSync(path.join(os.tmpdir(), 'bench-footprint-'));
  const procs = new Set<Proc>();

  // build the daemon as it ships
  const build = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT, encoding: 'utf8' });
  const built = build.status === 0 && existsSync(path.join(ROOT, 'dist/core/cli.js'));
  const daemonArgs = built ? [path.join(ROOT, 'dist/core/cli.js')] : ['--import', 'tsx', path.join(ROOT, 'core/cli.ts')];
  if (!built) process.stdout.write(`build failed, running the daemon through tsx:\n${build.stdout}${build.stderr}\n`);

  const bareFile = path.join(work, 'bare-client.mjs');
  writeFileSync(bareFile, BARE(import.meta.resolve('mqtt')));

  const broker = await startMosquitto({ extraConfig: ['set_tcp_nodelay true'] });
  const watcher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  const commChecks = new Map<string, number>();
  const replies = new Map<string, () => void>();
  watcher.on('message', (topic) => {
    const m = /^everest_api\/1\/system\/([^/]+)\/m2e\/(.+)$/.exec(topic);
    if (!m) return;
    if (m[2] === 'communication_check' && !commChecks.has(m[1]!)) commChecks.set(m[1]!, performance.now());
    if (m[2]!.startsWith('reply/')) replies.get(m[2]!.slice(6))?.();
  });
  await watcher.subscribeAsync(['everest_api/1/system/+/m2e/communication_check', 'everest_api/1/system/+/m2e/reply/+'], { qos: 0 });

  let n = 0;
  const launch = (kind: 'daemon' | 'bare'): { proc: Proc; spawnedAt: number } => {
    const moduleId = `bench_${kind}_${n++}`;
    let args: string[];
    if (kind === 'daemon') {
      const dir = mkdtempSync(path.join(work, 'daemon-'));
      const config = {
        moduleId,
        stateDir: path.join(dir, 'state'),
        mqtt: { url: broker.url },
        adapters: { installer: { type: 'simulated' }, power: { type: 'simulated' }, clock: { type: 'simulated' }, logSources: [{ type: 'system-snapshot' }] },
      };
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
      args = [...daemonArgs, 'run', '--config', path.join(dir, 'config.json')];
    } else {
      args = [bareFile, broker.url, moduleId];
    }
    const spawnedAt = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const proc: Proc = {
      child,
      moduleId,
      stop: async () => {
        procs.delete(proc);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await Promise.race([exited, sleep(8000)]);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      },
    };
    procs.add(proc);
    return { proc, spawnedAt };
  };
  const waitUp = async (p: Proc, timeoutMs = 30_000) => {
    const deadline = performance.now() + timeoutMs;
    while (!commChecks.has(p.moduleId)) {
      if (performance.now() > deadline || p.child.exitCode !== null) throw new Error(`${p.moduleId} did not send communication_check`);
      await sleep(5);
    }
    return commChecks.get(p.moduleId)!;
  };

  try {
    // --- start-up, alternating so drift hits both alike
    const startup: Record<'daemon' | 'bare', number[]> = { daemon: [], bare: [] };
    for (let i = 0; i < starts; i++) {
      for (const kind of ['bare', 'daemon'] as const) {
        const { proc, spawnedAt } = launch(kind);
        startup[kind].push((await waitUp(proc)) - spawnedAt);
        await proc.stop();
      }
    }

    // --- idle with heartbeat, both at once
    const daemon = launch('daemon').proc;
    const bare = launch('bare').proc;
    await waitUp(daemon);
    await waitUp(bare);
    const hbClient: MqttClient = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    let counter = 0;
    const hb = setInterval(() => {
      for (const p of [daemon, bare]) void hbClient.publishAsync(`everest_api/1/system/${p.moduleId}/e2m/heartbeat`, String(counter));
      counter++;
    }, 1000);
    await sleep(2000); // past start-up work
    const cpu0 = { daemon: cpuMsOf(daemon.child.pid!)!, bare: cpuMsOf(bare.child.pid!)! };
    const rssMax = { daemon: 0, bare: 0 };
    for (let s = 0; s < idleS; s++) {
      await sleep(1000);
      rssMax.daemon = Math.max(rssMax.daemon, rssOf(daemon.child.pid!) ?? 0);
      rssMax.bare = Math.max(rssMax.bare, rssOf(bare.child.pid!) ?? 0);
    }
    const idle = {
      daemon: { rssMB: mb(rssOf(daemon.child.pid!)), rssMaxMB: mb(rssMax.daemon), cpuMs: Math.round(cpuMsOf(daemon.child.pid!)! - cpu0.daemon) },
      bare: { rssMB: mb(rssOf(bare.child.pid!)), rssMaxMB: mb(rssMax.bare), cpuMs: Math.round(cpuMsOf(bare.child.pid!)! - cpu0.bare) },
    };

    // --- round trips, one at a time, in alternating blocks
    const rtt: Record<string, number[]> = { [daemon.moduleId]: [], [bare.moduleId]: [] };
    const requester = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const once = async (p: Proc, id: string, op = 'get_boot_reason') => {
      const got = new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no reply from ${p.moduleId}`)), 5000);
        replies.set(id, () => {
          clearTimeout(t);
          replies.delete(id);
          resolve();
        });
      });
      const envelope: Record<string, unknown> = { headers: { replyTo: `everest_api/1/system/${p.moduleId}/m2e/reply/${id}` } };
      if (op === 'is_reset_allowed') envelope.payload = 'Soft';
      const body = JSON.stringify(envelope);
      const t0 = performance.now();
      requester.publish(`everest_api/1/system/${p.moduleId}/e2m/${op}`, body, { qos: 0 });
      await got;
      return performance.now() - t0;
    };
    for (let i = 0; i < 100; i++) for (const p of [daemon, bare]) await once(p, `warm-${i}`); // JIT warm-up
    for (let block = 0; block < rtts / 50; block++) {
      for (const p of block % 2 ? [bare, daemon] : [daemon, bare]) {
        for (let i = 0; i < 50; i++) rtt[p.moduleId]!.push(await once(p, `b${block}-${i}`));
      }
    }
    // the same with is_reset_allowed, whose handler does no file I/O: the core's own cost
    const rttReset: Record<string, number[]> = { [daemon.moduleId]: [], [bare.moduleId]: [] };
    for (let block = 0; block < rtts / 50; block++) {
      for (const p of block % 2 ? [bare, daemon] : [daemon, bare]) {
        for (let i = 0; i < 50; i++) rttReset[p.moduleId]!.push(await once(p, `r${block}-${i}`, 'is_reset_allowed'));
      }
    }
    clearInterval(hb);
    await requester.endAsync(true);
    await hbClient.endAsync(true);
    const rd = latencySummary(rtt[daemon.moduleId]!);
    const rb = latencySummary(rtt[bare.moduleId]!);
    const su = { daemon: Math.round(median(startup.daemon)), bare: Math.round(median(startup.bare)) };

    return {
      daemonRunsFrom: built ? 'dist (tsc build)' : 'tsx (TypeScript sources)',
      broker: 'mosquitto, set_tcp_nodelay true',
      startupMs: { daemon: su.daemon, bare: su.bare, ratio: ratio(su.daemon, su.bare), target: 1.3, runs: starts, all: { daemon: startup.daemon.map(Math.round), bare: startup.bare.map(Math.round) } },
      idle: { seconds: idleS, heartbeatHz: 1, ...idle, rssRatio: ratio(idle.daemon.rssMB, idle.bare.rssMB), rssTarget: 1.3, cpuRatio: ratio(idle.daemon.cpuMs, Math.max(1, idle.bare.cpuMs)) },
      roundTripMs: { op: 'get_boot_reason', daemon: rd, bare: rb, medianRatio: ratio(rd.p50, rb.p50), p99Ratio: ratio(rd.p99, rb.p99), target: 1.2 },
      roundTripResetAllowedMs: (() => {
        const d = latencySummary(rttReset[daemon.moduleId]!);
        const b = latencySummary(rttReset[bare.moduleId]!);
        return { op: 'is_reset_allowed', daemon: d, bare: b, medianRatio: ratio(d.p50, b.p50), p99Ratio: ratio(d.p99, b.p99), target: 1.2 };
      })(),
    };
  } finally {
    for (const p of [...procs]) await p.stop();
    await watcher.endAsync(true).catch(() => undefined);
    await broker.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
