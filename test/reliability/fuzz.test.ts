/**
 * Fuzz: FUZZ_COUNT (default 10,000) generated messages over every e2m topic against the daemon
 * running as a child process (all built-in plugins on simulated adapters), with a real mosquitto.
 *
 *   FUZZ_SEED=123 FUZZ_COUNT=10000 npx vitest run test/reliability/fuzz.test.ts    # replay one run
 *   npm run test:fuzz                                                               # 100,000 messages
 *
 * Pass: the daemon stays up and answers; every request with a valid own replyTo gets exactly one
 * schema-valid reply; nothing at all is published outside the module's reply topics and its three
 * status variables (every status schema-valid); no unhandled rejection; RSS comes back near its
 * baseline; it shuts down cleanly and every persisted file still parses.
 *
 * Latency: the daemon runs with requestTimeoutMs 800, so the core owes every reply within 1 s
 * whatever a plugin does. How many replies took longer than 1 s (per operation), p50/p99, and how
 * often a plugin handler hit the timeout are printed; they are asserted only with
 * FUZZ_STRICT_LATENCY=1, because on a shared, loaded machine scheduling alone exceeds 1 s.
 *
 * Memory margin: RSS after the run may exceed the warmed-up baseline by at most 64 MiB or 50 %,
 * whichever is larger. Messages of 1 MiB+ pass through mqtt.js and V8 keeps some heap it grew
 * into; a leak of per-message state over 10,000 messages would show well beyond that.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { systemApiSchemas } from '../../core/schemas.js';
import { REPO_ROOT, spawnDaemon } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { freePort, startMosquitto } from '../helpers/mosquitto.js';
import { FuzzGenerator, type FuzzMessage } from './fuzz-gen.js';
import { checkPersisted, classify, MB, mb, rssOf, statusProblem, until } from './support.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const COUNT = Number(process.env.FUZZ_COUNT ?? 10_000);
const BATCH = 50;
const MAX_OWED = 100;
const STRICT_LATENCY = process.env.FUZZ_STRICT_LATENCY === '1';
const REPLY_WITHIN_MS = 1000;
const REQUEST_TIMEOUT_MS = 800;
const MODULE = 'system_api';

interface Seen {
  at: number;
  raw: Buffer;
}

describe('fuzz: hostile e2m messages', () => {
  it(`${COUNT} generated messages: daemon stays up, answers every valid replyTo exactly once, publishes nowhere else`, async () => {
    process.stdout.write(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED}), ${COUNT} messages\n`);
    const broker = await startMosquitto({ extraConfig: ['set_tcp_nodelay true', 'max_queued_messages 0', 'max_queued_bytes 0'] });
    try {
      const closedPorts = await Promise.all([freePort(), freePort(), freePort()]);
      // the environment the systemd unit gives the daemon (deploy/everest-system.service)
      const unitEnv = Object.fromEntries(
        readFileSync(path.join(REPO_ROOT, 'deploy', 'everest-system.service'), 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('Environment='))
          .map((l) => {
            const assignment = l.slice('Environment='.length);
            const eq = assignment.indexOf('=');
            return [assignment.slice(0, eq), assignment.slice(eq + 1)] as [string, string];
          }),
      );
      const daemon = await spawnDaemon({
        moduleId: MODULE,
        mqtt: { url: broker.url },
        log: { level: 'info' },
        // the core's promise under test: a reply within 1 s whatever a plugin does (slow handlers get the
        // safe reply at this timeout; how often that happened is printed per operation)
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        adapters: { installer: { type: 'simulated' }, power: { type: 'simulated' }, clock: { type: 'simulated' }, logSources: [{ type: 'system-snapshot' }] },
      }, { env: unitEnv });
      await daemon.waitForLog(/listening for EVerest requests/);
      const pid = daemon.child.pid!;

      // everything on the broker, from a client of its own
      const observer = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
      const replies = new Map<string, Seen[]>();
      const foreign: string[] = [];
      const badStatus: string[] = [];
      const statusCounts: Record<string, number> = {};
      observer.on('message', (topic, raw) => {
        const c = classify(topic, MODULE);
        if (c.kind === 'inbound') return;
        if (c.kind === 'foreign') foreign.push(`${topic} ${raw.toString('utf8').slice(0, 100)}`);
        else if (c.kind === 'reply') {
          const list = replies.get(c.id) ?? [];
          list.push({ at: performance.now(), raw });
          replies.set(c.id, list);
        } else {
          statusCounts[c.name] = (statusCounts[c.name] ?? 0) + 1;
          const problem = statusProblem(c.name, raw);
          if (problem) badStatus.push(`${c.name}: ${problem}: ${raw.toString('utf8').slice(0, 100)}`);
        }
      });
      await observer.subscribeAsync('#', { qos: 0 });

      const ev = await EverestSim.connect(broker.url, { moduleId: MODULE });
      ev.startHeartbeat(1000);

      // warm up (JIT, validators), then take the baseline
      for (const op of ['get_boot_reason', 'is_reset_allowed', 'set_system_time'] as const) {
        for (let i = 0; i < 20; i++) await ev.request(op, op === 'is_reset_allowed' ? 'Soft' : op === 'set_system_time' ? new Date().toISOString() : undefined);
      }
      // code loaded on first use belongs in the baseline too: one log archive (tar, system snapshot) and
      // one FTP attempt each way (basic-ftp), all to a closed port
      const closed = `ftp://127.0.0.1:${closedPorts[0]}`;
      await ev.request('upload_logs', { location: `${closed}/warm-up/`, request_id: 1, retries: 1 });
      await ev.waitForStatus('log_status', (v: { log_status: string }) => v.log_status === 'UploadFailure', 60_000);
      await ev.request('update_firmware', { location: `${closed}/warm-up.img`, request_id: 1, retries: 1, retry_interval_s: 0 });
      await ev.waitForStatus('firmware_update_status', (v: { firmware_update_status: string }) => v.firmware_update_status === 'DownloadFailed', 60_000);
      const baseline = rssOf(pid)!;
      let peak = baseline;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssOf(pid) ?? 0);
      }, 100);

      const gen = new FuzzGenerator(SEED, { moduleId: MODULE, closedPorts });
      const sent = new Map<string, { m: Omit<FuzzMessage, 'payload'>; at: number }>();
      const kinds: Record<string, number> = {};
      const byName: Record<string, number> = {};
      let bytes = 0;
      const owed = new Set<string>();
      const t0 = performance.now();
      try {
        for (let done = 0; done < COUNT; ) {
          const batch: FuzzMessage[] = [];
          for (let i = 0; i < BATCH && done < COUNT; i++, done++) batch.push(gen.next());
          await Promise.all(
            batch.map(async (m) => {
              byName[m.name] = (byName[m.name] ?? 0) + 1;
              kinds[m.expect] = (kinds[m.expect] ?? 0) + 1;
              bytes += m.payload.length;
              await ev.publishRaw(m.name, m.payload);
              if (m.replyId) {
                const { payload: _p, ...meta } = m;
                sent.set(m.replyId, { m: meta, at: performance.now() });
                if (m.expect === 'reply') owed.add(m.replyId);
              }
            }),
          );
          for (const id of owed) if (replies.has(id)) owed.delete(id);
          // keep at most MAX_OWED replies outstanding: pressure without an unbounded backlog
          await until(() => [...owed].filter((id) => !replies.has(id)).length <= MAX_OWED, 10_000, 'replies').catch(() => undefined);
          if (done % 1000 === 0) process.stdout.write(`fuzz: ${done} sent, ${Math.round(performance.now() - t0)} ms, RSS ${mb(rssOf(pid))} MB\n`);
          if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) break;
        }
        await until(() => [...owed].every((id) => replies.has(id)), 15_000, 'the last replies').catch(() => undefined);
        // a sentinel after everything: once it is answered, earlier replies had their chance
        expect(await ev.request('get_boot_reason', undefined, { timeoutMs: 5000 })).toBeTypeOf('string');
      } finally {
        clearInterval(sampler);
        if (process.env.FUZZ_LOG_FILE) writeFileSync(process.env.FUZZ_LOG_FILE, daemon.output());
      }
      const elapsed = performance.now() - t0;

      // --- the daemon stayed up
      expect(daemon.child.exitCode, daemon.output().slice(-3000)).toBeNull();
      expect(daemon.child.signalCode).toBeNull();

      // --- every valid replyTo answered exactly once, schema-valid, within 1 s; no reply where none was owed
      const problems: string[] = [];
      const latencies: number[] = [];
      const late: Record<string, number> = {};
      for (const [id, { m, at }] of sent) {
        const got = replies.get(id) ?? [];
        const what = `#${m.n} ${m.name} ${m.kind}`;
        if (m.expect === 'reply' && got.length === 0) problems.push(`${what}: no reply`);
        if (m.expect === 'none' && got.length > 0) problems.push(`${what}: reply although the replyTo was not valid: ${got[0]!.raw.toString()}`);
        if (got.length > 1) problems.push(`${what}: ${got.length} replies`);
        for (const r of got.slice(0, 1)) {
          let value: unknown;
          try {
            value = JSON.parse(r.raw.toString('utf8'));
          } catch {
            problems.push(`${what}: reply is not JSON: ${r.raw.toString('utf8').slice(0, 80)}`);
            continue;
          }
          const invalid = systemApiSchemas().reply(m.name, value);
          if (invalid) problems.push(`${what}: reply ${JSON.stringify(value)} is invalid: ${invalid}`);
          const ms = r.at - at;
          latencies.push(ms);
          if (ms > REPLY_WITHIN_MS) {
            late[m.name] = (late[m.name] ?? 0) + 1;
            if (STRICT_LATENCY) problems.push(`${what}: reply after ${Math.round(ms)} ms`);
          }
        }
      }
      const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
      for (const id of replies.keys()) if (!sent.has(id) && !UUID.test(id)) problems.push(`reply on an id nobody asked with: ${id}`);
      expect(problems.slice(0, 30), `seed ${SEED}: ${problems.length} problems`).toEqual([]);
      expect(foreign.slice(0, 20), `seed ${SEED}: published outside the module's topics`).toEqual([]);
      expect(badStatus.slice(0, 20), `seed ${SEED}: invalid statuses`).toEqual([]);

      // --- nothing went unhandled inside the daemon
      const unhandled = daemon.output().split('\n').filter((l) => /unhandled rejection|uncaught/i.test(l));
      expect(unhandled.slice(0, 10), `seed ${SEED}`).toEqual([]);

      // --- memory comes back near the baseline (V8 gives memory back after idle GCs)
      const limit = Math.max(baseline + 64 * MB, baseline * 1.5);
      let after = rssOf(pid)!;
      await until(() => (after = rssOf(pid)!) <= limit, 20_000, 'RSS back near baseline', 250).catch(() => undefined);

      // plugin handlers slower than requestTimeoutMs (answered with the safe reply by the core)
      const slow: Record<string, number> = {};
      for (const line of daemon.output().split('\n')) {
        if (!line.includes('"outcome":"timeout"')) continue;
        const op = /"op":"([a-z_]+)"/.exec(line)?.[1] ?? '?';
        slow[op] = (slow[op] ?? 0) + 1;
      }
      const sorted = [...latencies].sort((a, b) => a - b);
      process.stdout.write(
        `${JSON.stringify({
          seed: SEED,
          messages: COUNT,
          megabytesSent: mb(bytes),
          seconds: Math.round(elapsed / 100) / 10,
          byName,
          expected: kinds,
          replies: latencies.length,
          repliesLaterThan1s: late,
          shareWithin1s: Math.round((1 - Object.values(late).reduce((a, b) => a + b, 0) / Math.max(1, latencies.length)) * 10000) / 100,
          replyMs: { p50: sorted[Math.floor(sorted.length * 0.5)], p99: sorted[Math.floor(sorted.length * 0.99)], max: sorted[sorted.length - 1] },
          statuses: statusCounts,
          handlerTimeouts: slow,
          rssMB: { baseline: mb(baseline), peak: mb(peak), after: mb(after), limit: mb(limit) },
        })}\n`,
      );
      expect(after, `RSS ${mb(after)} MB after the run, baseline ${mb(baseline)} MB`).toBeLessThanOrEqual(limit);

      // --- clean shutdown; every persisted file still parses
      ev.stopHeartbeat();
      daemon.kill('SIGTERM');
      const exit = await daemon.exited;
      const tail = daemon.output().split('\n').filter((l) => /shut|stop|exit|took/i.test(l)).slice(-15).join('\n');
      expect(exit, `seed ${SEED}: shutdown log:\n${tail}`).toEqual({ code: 0, signal: null });
      await observer.endAsync(true);
      const persisted = checkPersisted(daemon.stateDir);
      process.stdout.write(`persisted: ${persisted.files} files, temp files left by writes cut short at exit: ${JSON.stringify(persisted.tempFiles)}\n`);
      expect(persisted.problems).toEqual([]);
    } finally {
      await broker.stop();
    }
  }, 600_000);
});
