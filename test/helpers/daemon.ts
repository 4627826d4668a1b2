/**
 * Running the daemon in tests.
 *
 *   const dir = tempDir();
 *   const d = await startDaemon({ mqtt: { url: broker.url }, plugins: [...] });   // in-process
 *   const p = await spawnDaemon({ ...same }, { env });                            // child process (kill -9 tests)
 *   const stub = recordingStub(binDir, 'systemctl');                              // argv recorder on PATH
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import type { Logger } from '../../core/api.js';
import { resolveConfig, type Config, type ConfigInput } from '../../core/config.js';
import { Daemon } from '../../core/kernel.js';
import { createLogger } from '../../core/logger.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Every adapter slot bound to its simulated (or harmless) implementation: all built-in plugins start. */
export const SIMULATED_ADAPTERS = {
  installer: { type: 'simulated' },
  power: { type: 'simulated' },
  clock: { type: 'simulated' },
  logSources: [{ type: 'system-snapshot' }],
};

function cleanup(fn: () => unknown): void {
  try {
    onTestFinished(async () => {
      await fn();
    });
  } catch {
    // called outside a running test: the caller cleans up
  }
}

/** A temp dir removed when the current test finishes. */
export function tempDir(prefix = 'esc-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A log line as the daemon wrote it (pino JSON). */
export type LogLine = Record<string, unknown> & { level: number; msg?: string };

export interface RunningDaemon {
  daemon: Daemon;
  config: Config;
  stateDir: string;
  logs: LogLine[];
  /** all log lines as text, for "never logged" assertions */
  logText(): string;
  /** resolves with the first log line (past or future) that matches */
  waitForLog(match: RegExp | ((l: LogLine) => boolean), timeoutMs?: number): Promise<LogLine>;
  stop(): Promise<void>;
}

function matcher(match: RegExp | ((l: LogLine) => boolean)): (l: LogLine, raw: string) => boolean {
  return typeof match === 'function' ? (l) => match(l) : (_l, raw) => match.test(raw);
}

/** A logger that keeps every line in memory (and echoes with TEST_LOG=1). */
export function memoryLogger(level = 'debug'): { logger: Logger; lines: LogLine[]; raw: string[]; onLine(fn: () => void): void } {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const listeners = new Set<() => void>();
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const text of chunk.toString().split('\n')) {
        if (!text) continue;
        raw.push(text);
        try {
          lines.push(JSON.parse(text) as LogLine);
        } catch {
          lines.push({ level: 30, msg: text });
        }
        if (process.env.TEST_LOG) process.stdout.write(`${text}\n`);
      }
      for (const l of listeners) l();
      cb();
    },
  });
  const logger = createLogger({ level, destination: destination as never });
  return { logger, lines, raw, onLine: (fn) => listeners.add(fn) };
}

/** Config for tests: a temp stateDir, fast communication check; anything can be overridden. */
export function testConfig(input: ConfigInput): ConfigInput {
  const mqtt = (input.mqtt ?? {}) as Record<string, unknown>;
  return {
    moduleId: 'system_api',
    communicationCheck: { intervalMs: 200 },
    log: { level: 'debug' },
    ...input,
    mqtt: { reconnectPeriodMs: 200, ...mqtt },
    stateDir: (input.stateDir as string | undefined) ?? tempDir('esc-state-'),
  };
}

/** Starts the daemon in this process; stopped automatically at the end of the test. */
export async function startDaemon(input: ConfigInput, options: { env?: Record<string, string | undefined>; baseDir?: string; waitConnected?: boolean } = {}): Promise<RunningDaemon> {
  const config = resolveConfig(testConfig(input), options.baseDir ?? REPO_ROOT, 'test config');
  const mem = memoryLogger(config.log.level);
  const daemon = new Daemon(config, { logger: mem.logger, env: options.env ?? { ...process.env } });
  const running: RunningDaemon = {
    daemon,
    config,
    stateDir: config.stateDir,
    logs: mem.lines,
    logText: () => mem.raw.join('\n'),
    waitForLog: (match, timeoutMs = 10_000) => {
      const test = matcher(match);
      return new Promise((resolve, reject) => {
        const check = () => {
          const i = mem.lines.findIndex((l, idx) => test(l, mem.raw[idx] ?? ''));
          if (i >= 0) {
            clearTimeout(timer);
            resolve(mem.lines[i]!);
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => reject(new Error(`no log line matching ${String(match)} within ${timeoutMs} ms`)), timeoutMs);
        if (!check()) mem.onLine(() => void check());
      });
    },
    stop: () => daemon.stop(),
  };
  cleanup(() => daemon.stop());
  await daemon.start();
  if (options.waitConnected !== false) await daemon.waitConnected();
  return running;
}

export interface SpawnedDaemon {
  child: ChildProcess;
  configFile: string;
  stateDir: string;
  /** stdout+stderr so far */
  output(): string;
  waitForLog(match: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `everest-system run` as a child process (TypeScript through tsx); killed at the end of the test. */
export async function spawnDaemon(
  input: ConfigInput,
  options: { env?: Record<string, string | undefined>; dir?: string; args?: string[] } = {},
): Promise<SpawnedDaemon> {
  const dir = options.dir ?? tempDir('esc-spawn-');
  const configFile = path.join(dir, 'config.json');
  const cfg = testConfig(input);
  writeFileSync(configFile, JSON.stringify(cfg, null, 2));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'core/cli.ts'), 'run', '--config', configFile, ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    if (process.env.TEST_LOG) process.stdout.write(chunk);
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      for (const w of waiters) w();
      resolve({ code, signal });
    }),
  );
  cleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    configFile,
    stateDir: cfg.stateDir as string,
    output: () => out,
    waitForLog: (re, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(m[0]);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`daemon exited before logging ${String(re)}:\n${out.slice(-4000)}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no output matching ${String(re)} within ${timeoutMs} ms:\n${out.slice(-4000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
    },
    exited,
  };
}

export interface RecordingStub {
  path: string;
  /** argv of every call so far, oldest first */
  calls(): string[][];
}

/**
 * Writes an executable stand-in `<dir>/<name>` that appends its argv (one JSON line per call)
 * to `<dir>/<name>.calls`, prints `stdout`, and exits with `exitCode`. Put `dir` first on PATH of
 * the daemon's environment only.
 */
export function recordingStub(dir: string, name: string, options: { exitCode?: number; stdout?: string; stderr?: string } = {}): RecordingStub {
  const file = path.join(dir, name);
  const log = `${file}.calls`;
  const script = `#!${process.execPath}
const fs = require('node:fs');
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(process.argv.slice(2)) + '\\n');
process.stdout.write(${JSON.stringify(options.stdout ?? '')});
process.stderr.write(${JSON.stringify(options.stderr ?? '')});
process.exit(${options.exitCode ?? 0});
`;
  writeFileSync(file, script);
  chmodSync(file, 0o755);
  return {
    path: file,
    calls: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as string[])
        : [],
  };
}

/** PATH with `dir` first, for the daemon's env only. */
export function pathWith(dir: string): string {
  return `${dir}${path.delimiter}${process.env.PATH ?? ''}`;
}
