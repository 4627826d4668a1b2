/** Small shared pieces of the installer adapter tests: a recording logger, deps, temp dirs. */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach } from 'vitest';
import type { AdapterDeps, Logger } from '../../../core/api.js';

export interface LogLine {
  level: string;
  obj: unknown;
  msg?: string;
}

/** A pino-shaped logger that keeps every line, so tests can check what a user would read. */
export function recordingLogger(lines: LogLine[] = []): Logger & { lines: LogLine[]; text(): string } {
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      lines.push({ level, obj, msg: typeof obj === 'string' && msg === undefined ? obj : msg });
    };
  const logger = {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: () => logger,
    text: () => lines.map((l) => `${l.level} ${l.msg ?? ''} ${JSON.stringify(l.obj)}`).join('\n'),
  };
  return logger;
}

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => fsp.rm(d, { recursive: true, force: true })));
});

/** A temp dir removed after the current test. */
export function tempDir(prefix = 'installer-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export function makeDeps(stateDir: string, env: Record<string, string | undefined> = {}): AdapterDeps & {
  log: ReturnType<typeof recordingLogger>;
} {
  return { log: recordingLogger(), stateDir, env: { ...process.env, ...env } };
}

/** Writes an executable shell script into `dir` and returns its path. */
export function writeScript(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

/** Resolves when `predicate` is true, polling a cheap condition (file appears, process gone). */
export async function until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** True while the process exists and is not a zombie waiting to be reaped. */
export function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
