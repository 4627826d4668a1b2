/**
 * Running `probe` in-process against a real daemon: captured stdout/stderr, parsed --json events,
 * waiting on output, and a daemon on simulated adapters per test (own module id, own state dir).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { runProbe } from '../../core/probe/index.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';

export interface Captured {
  stdout: Writable;
  stderr: Writable;
  out(): string;
  err(): string;
  /** stdout lines parsed as JSON (with --json) */
  events(): ProbeEvent[];
}

export type ProbeEvent = Record<string, unknown> & { event: string; t: string };

export function capture(): Captured {
  let out = '';
  let err = '';
  const stdout = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      if (process.env.TEST_LOG) process.stdout.write(chunk);
      cb();
    },
  });
  const stderr = new Writable({
    write(chunk: Buffer, _enc, cb) {
      err += chunk.toString();
      cb();
    },
  });
  return {
    stdout,
    stderr,
    out: () => out,
    err: () => err,
    events: () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ProbeEvent),
  };
}

export interface ProbeRun extends Captured {
  /** resolves with the exit code */
  done: Promise<number>;
  abort(): void;
}

/** Starts `probe <args>` in-process (not awaited), e.g. to act while it runs. */
export function probe(args: string[], opts: { tty?: boolean } = {}): ProbeRun {
  const c = capture();
  const controller = new AbortController();
  const done = runProbe(args, { stdout: c.stdout, stderr: c.stderr, signal: controller.signal, tty: opts.tty ?? false });
  return { ...c, done, abort: () => controller.abort() };
}

/** Runs `probe <args>` to its end. */
export async function probeDone(args: string[], opts: { tty?: boolean } = {}): Promise<Captured & { code: number }> {
  const run = probe(args, opts);
  const code = await run.done;
  return { ...run, code };
}

/** Resolves when `cond` holds (polled every 20 ms). */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition', dump?: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${dump ? `:\n${dump()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let seq = 0;
/** a module id of its own per test, so no message of one test reaches another */
export const moduleId = () => `probe_${process.pid}_${++seq}`;

export interface DaemonSetup {
  daemon: RunningDaemon;
  moduleId: string;
  stateDir: string;
  config: Record<string, unknown>;
  /** the flags that point the probe at this daemon */
  flags: string[];
  restart(): Promise<RunningDaemon>;
  /** simulated power adapter calls */
  powerCalls(): Promise<string[]>;
}

/** The daemon on simulated adapters, every built-in plugin, on `url` (in-process, stopped at test end). */
export async function daemonOn(url: string, extra: Record<string, unknown> = {}, installer: Record<string, unknown> = { type: 'simulated', rebootRequired: false }): Promise<DaemonSetup> {
  const id = (extra.moduleId as string | undefined) ?? moduleId();
  const config: Record<string, unknown> = {
    moduleId: id,
    mqtt: { url },
    adapters: { installer, power: { type: 'simulated' }, clock: { type: 'simulated' }, logSources: [{ type: 'system-snapshot' }] },
    ...extra,
  };
  const first = await startDaemon(config);
  const setup: DaemonSetup = {
    daemon: first,
    moduleId: id,
    stateDir: first.stateDir,
    config,
    flags: ['--url', url, '--module-id', id, '--heartbeat-ms', '200', '--comm-timeout-s', '2'],
    async restart() {
      await setup.daemon.stop();
      setup.daemon = await startDaemon({ ...config, stateDir: setup.stateDir });
      return setup.daemon;
    },
    async powerCalls() {
      try {
        const text = await fsp.readFile(path.join(setup.stateDir, 'adapters', 'simulated-power', 'calls.jsonl'), 'utf8');
        return text
          .split('\n')
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { action: string }).action);
      } catch {
        return [];
      }
    },
  };
  return setup;
}

/** the firmware_update_status / log_status values of --json events, in order */
export const statuses = (events: ProbeEvent[]) => events.filter((e) => e.event === 'status' && !e.other_request).map((e) => e.status);
