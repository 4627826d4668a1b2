/**
 * Recording stand-ins for OS tools that must never run here (systemctl, timedatectl, date,
 * hwclock), and a capturing logger. A stand-in is a real executable written into a per-test
 * directory that the test puts first on PATH of the adapter's or daemon's env only.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../../core/api.js';

export interface StubBehaviour {
  exitCode?: number;
  stdout?: string;
  stderr?: string;
}

export interface StubOptions extends StubBehaviour {
  /** behaviour per first argument (e.g. `show` vs `set-time`) */
  byFirstArg?: Record<string, StubBehaviour>;
}

export interface StubCall {
  argv: string[];
  /** TZ in the stand-in's environment */
  tz: string | null;
}

export interface Stub {
  path: string;
  calls(): StubCall[];
  argvs(): string[][];
}

/** Writes `<dir>/<name>`, a node script that appends one JSON line per call and behaves as told. */
export function writeStub(dir: string, name: string, options: StubOptions = {}): Stub {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  const log = path.join(dir, `${name}.calls.jsonl`);
  const script = `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ argv: args, tz: process.env.TZ ?? null }) + '\\n');
const opts = ${JSON.stringify(options)};
const b = Object.assign({}, opts, (opts.byFirstArg || {})[args[0]] || {});
if (b.stdout) process.stdout.write(b.stdout);
if (b.stderr) process.stderr.write(b.stderr);
process.exitCode = b.exitCode || 0;
`;
  fs.writeFileSync(file, script, { mode: 0o755 });
  const calls = (): StubCall[] =>
    fs.existsSync(log)
      ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as StubCall)
      : [];
  return { path: file, calls, argvs: () => calls().map((c) => c.argv) };
}

/** A temp dir removed by the returned cleanup. */
export function makeTempDir(prefix = 'esc-test-'): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** process.env with `binDir` first on PATH; process.env itself is left alone. */
export function envWithPath(binDir: string): Record<string, string | undefined> {
  return { ...process.env, PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ''}` };
}

export interface LogLine {
  level: string;
  obj: unknown;
  msg?: string;
}

/** A Logger that keeps every line in `lines`. */
export function captureLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): Logger & { lines: LogLine[] } {
  const at = (level: string) => (obj: unknown, msg?: string) => {
    lines.push({ level, obj: typeof obj === 'object' && obj !== null ? { ...bindings, ...obj } : obj, msg: msg ?? (typeof obj === 'string' ? obj : undefined) });
  };
  return {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (b) => captureLogger(lines, { ...bindings, ...b }),
  };
}
