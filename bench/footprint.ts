/**
 * Footprint of the daemon against its baseline, a bare mqtt.js client that only subscribes to the
 * e2m topics, publishes `communication_check true` every second and answers get_boot_reason
 * directly. The daemon is measured in both forms it ships in: bundled into one file
 * (deploy/build-bundle.mjs, what `npm start` and a board run; one file spares the module loader
 * several hundred file lookups and reads at start-up) and built by tsc (dist/, the library build
 * plugin authors compile against, also runnable as `node dist/core/cli.js`). All run as child
 * processes against one mosquitto (`set_tcp_nodelay true`, else Nagle's delay hides everything
 * else) in the same run:
 *
 *   - start-up: spawn -> first m2e/communication_check seen by a subscriber (median of BENCH_STARTS)
 *   - idle: RSS and CPU time over BENCH_IDLE_S seconds (default 60) with EVerest's heartbeat at 1 Hz
 *   - round trip: get_boot_reason request -> reply, one at a time (BENCH_RTT requests each, default
 *     6000, in blocks of 50 that rotate over the three)
 *
 * Both forms are built here first. Targets: idle RSS <= 1.3x, start-up <= 1.3x, round trip <= 1.2x.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { cpuMsOf, mb, percentile, rssOf } from '../test/reliability/support.js';

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

/** the baseline, the daemon as tsc builds it, the daemon as one bundled file */
const KINDS = ['bare', 'dist', 'bundle'] as const;
type Kind = (typeof KINDS)[number];
type Form = Exclude<Kind, 'bare'>;

interface Proc {
  child: ChildProcess;
  moduleId: string;
  stop(): Promise<void>;
}

export default async function footprint(): Promise<Record<string, unknown>> {
  const idleS = Number(process.env.BENCH_IDLE_S ?? 60);
  const starts = Number(process.env.BENCH_STARTS ?? 5);
  const rtts = Number(process.env.BENCH_RTT ?? 6000);
  const work = mkdtempSync(path.join(os.tmpdir(), 'bench-footprint-'));
  const procs = new Set<Proc>();

  // build the daemon in both shipped forms: the bundle (deploy/build-bundle.mjs, what `npm start`
  // and a board run) and tsc (dist/, the library build)
  const build = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT, encoding: 'utf8' });
  const built = build.status === 0 && existsSync(path.join(ROOT, 'dist/core/cli.js'));
  if (!built) throw new Error(`tsc build failed:\n${build.stdout}${build.stderr}`);
  const bundleDir = path.join(work, 'bundle');
  const bundled = spawnSync(process.execPath, [path.join(ROOT, 'deploy/build-bundle.mjs'), '--outdir', bundleDir], { cwd: ROOT, encoding: 'utf8' });
  if (bundled.status !== 0) throw new Error(`bundle build failed:\n${bundled.stdout}${bundled.stderr}`);
  const daemonArgs: Record<Form, string[]> = { dist: [path.join(ROOT, 'dist/core/cli.js')], bundle: [path.join(bundleDir, 'bin/everest-system.mjs')] };

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
  const launch = (kind: Kind): { proc: Proc; spawnedAt: number } => {
    const moduleId = `bench_${kind}_${n++}`;
    let args: string[];
    if (kind !== 'bare') {
      const dir = mkdtempSync(path.join(work, 'daemon-'));
      const config = {
        moduleId,
        stateDir: path.join(dir, 'state'),
        mqtt: { url: broker.url },
        adapters: { installer: { type: 'simulated' }, power: { type: 'simulated' }, clock: { type: 'simulated' }, logSources: [{ type: 'system-snapshot' }] },
      };
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
      args = [...daemonArgs[kind], 'run', '--config', path.join(dir, 'config.json')];
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
    // --- start-up, alternating so drift hits all alike
    const startup: Record<Kind, number[]> = { bare: [], dist: [], bundle: [] };
    for (let i = 0; i < starts; i++) {
      for (const kind of KINDS) {
        const { proc, spawnedAt } = launch(kind);
        startup[kind].push((await waitUp(proc)) - spawnedAt);
        await proc.stop();
      }
    }

    // --- idle with heartbeat, all at once
    const running = Object.fromEntries(KINDS.map((k) => [k, launch(k).proc])) as Record<Kind, Proc>;
    for (const k of KINDS) await waitUp(running[k]);
    const hbClient: MqttClient = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    let counter = 0;
    const hb = setInterval(() => {
      for (const k of KINDS) void hbClient.publishAsync(`everest_api/1/system/${running[k].moduleId}/e2m/heartbeat`, String(counter));
      counter++;
    }, 1000);
    await sleep(2000); // past start-up work
    const pid = (k: Kind) => running[k].child.pid!;
    const cpu0 = Object.fromEntries(KINDS.map((k) => [k, cpuMsOf(pid(k))!])) as Record<Kind, number>;
    const rssMax = { bare: 0, dist: 0, bundle: 0 };
    for (let s = 0; s < idleS; s++) {
      await sleep(1000);
      for (const k of KINDS) rssMax[k] = Math.max(rssMax[k], rssOf(pid(k)) ?? 0);
    }
    const idle = Object.fromEntries(
      KINDS.map((k) => [k, { rssMB: mb(rssOf(pid(k))), rssMaxMB: mb(rssMax[k]), cpuMs: Math.round(cpuMsOf(pid(k))! - cpu0[k]) }]),
    ) as Record<Kind, { rssMB: number; rssMaxMB: number; cpuMs: number }>;

    // --- round trips, one at a time, in rotating blocks
    const requester = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const once = async (p: Proc, id: string, op: string) => {
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
    const roundTrips = async (op: string, tag: string) => {
      const times: Record<Kind, number[]> = { bare: [], dist: [], bundle: [] };
      for (let i = 0; i < 100; i++) for (const k of KINDS) await once(running[k], `${tag}-warm-${i}`, op); // JIT warm-up
      for (let block = 0; block < rtts / 50; block++) {
        const order = [...KINDS.slice(block % KINDS.length), ...KINDS.slice(0, block % KINDS.length)];
        for (const k of order) for (let i = 0; i < 50; i++) times[k].push(await once(running[k], `${tag}${block}-${i}`, op));
      }
      // the figures in microseconds; ratios from the unrounded percentiles
      const pct = Object.fromEntries(KINDS.map((k) => {
        const sorted = [...times[k]].sort((a, b) => a - b);
        return [k, { p50: percentile(sorted, 50), p99: percentile(sorted, 99) }];
      })) as Record<Kind, { p50: number; p99: number }>;
      const us = (ms: number) => Math.round(ms * 1000);
      return {
        op,
        ...Object.fromEntries(KINDS.map((k) => [k, { n: times[k].length, p50Us: us(pct[k].p50), p99Us: us(pct[k].p99) }])),
        medianRatio: { dist: ratio(pct.dist.p50, pct.bare.p50), bundle: ratio(pct.bundle.p50, pct.bare.p50) },
        p99Ratio: { dist: ratio(pct.dist.p99, pct.bare.p99), bundle: ratio(pct.bundle.p99, pct.bare.p99) },
        target: 1.2,
      };
    };
    const rttBoot = await roundTrips('get_boot_reason', 'b');
    // the same with is_reset_allowed, whose handler does no file I/O: the core's own cost
    const rttReset = await roundTrips('is_reset_allowed', 'r');
    clearInterval(hb);
    await requester.endAsync(true);
    await hbClient.endAsync(true);
    const su = Object.fromEntries(KINDS.map((k) => [k, Math.round(median(startup[k]))])) as Record<Kind, number>;

    return {
      forms: { bundle: 'deploy/build-bundle.mjs, one esbuild file (what npm start and a board run)', dist: 'tsc build in dist/ (the library build; node dist/core/cli.js)' },
      broker: 'mosquitto, set_tcp_nodelay true',
      startupMs: {
        ...su,
        ratio: { dist: ratio(su.dist, su.bare), bundle: ratio(su.bundle, su.bare) },
        target: 1.3,
        runs: starts,
        all: Object.fromEntries(KINDS.map((k) => [k, startup[k].map(Math.round)])),
      },
      idle: {
        seconds: idleS,
        heartbeatHz: 1,
        ...idle,
        rssRatio: { dist: ratio(idle.dist.rssMB, idle.bare.rssMB), bundle: ratio(idle.bundle.rssMB, idle.bare.rssMB) },
        rssTarget: 1.3,
        cpuRatio: { dist: ratio(idle.dist.cpuMs, Math.max(1, idle.bare.cpuMs)), bundle: ratio(idle.bundle.cpuMs, Math.max(1, idle.bare.cpuMs)) },
      },
      roundTrip: rttBoot,
      roundTripResetAllowed: rttReset,
    };
  } finally {
    for (const p of [...procs]) await p.stop();
    await watcher.endAsync(true).catch(() => undefined);
    await broker.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
