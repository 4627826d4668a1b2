/**
 * Runs one installer command (execa, argument array, never a shell) and streams its output
 * line by line. Shared by the installer adapters.
 *
 * The child gets its own process group, so an abort or a timeout ends the whole tree a vendor
 * script may have started (SIGTERM to the group, SIGKILL after a grace period), not just the
 * first process. The result is always returned, never thrown: a command that cannot be
 * started reports `spawnError`.
 */
import * as readline from 'node:readline';
import { execa } from 'execa';

export interface RunOptions {
  env: Readonly<Record<string, string | undefined>>;
  signal?: AbortSignal;
  /** end the command (whole process group) after this long */
  timeoutMs?: number;
  /** wait this long after SIGTERM before SIGKILL (default 5 s) */
  killGraceMs?: number;
  /** how long the output is still read after the command exited (default LEFTOVER_GRACE_MS) */
  leftoverGraceMs?: number;
  /** called for each output line (stdout and stderr), in arrival order per stream */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export interface RunResult {
  /** exit code, undefined when killed by a signal or not started */
  exitCode?: number;
  /** the signal that ended it, if any */
  signal?: string;
  /** every output line, stdout and stderr merged in arrival order */
  lines: string[];
  aborted: boolean;
  timedOut: boolean;
  /** set when the command could not be started (e.g. not found) */
  spawnError?: string;
}

/** output still open this long after the command exited belongs to processes it left behind */
export const LEFTOVER_GRACE_MS = 2000;

export async function runCommand(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  const [file, ...args] = argv;
  const lines: string[] = [];
  if (!file) return { lines, aborted: false, timedOut: false, spawnError: 'empty command' };
  if (options.signal?.aborted) return { lines, aborted: true, timedOut: false };

  const child = execa(file, args, {
    env: options.env as Record<string, string>,
    stdin: 'ignore',
    reject: false,
    buffer: false,
    detached: true,
    stripFinalNewline: false,
  });

  let aborted = false;
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (sig: NodeJS.Signals): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      // the group is gone already
    }
  };
  const terminate = (): void => {
    killGroup('SIGTERM');
    killTimer ??= setTimeout(() => killGroup('SIGKILL'), options.killGraceMs ?? 5000);
    killTimer.unref();
  };
  const onAbort = (): void => {
    aborted = true;
    terminate();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const timeout =
    options.timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          terminate();
        }, options.timeoutMs)
      : undefined;

  const readers: Promise<void>[] = [];
  const lineReaders: readline.Interface[] = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    const source = child[stream];
    if (!source) continue;
    const rl = readline.createInterface({ input: source, crlfDelay: Infinity });
    lineReaders.push(rl);
    rl.on('line', (raw) => {
      const line = raw.replace(/\r$/, '');
      lines.push(line);
      options.onLine?.(line, stream);
    });
    readers.push(new Promise((resolve) => rl.once('close', () => resolve())));
  }

  // A process the command left behind can hold its output open after the command exited (one
  // that SWUpdate forked did, blocked sending to its notification socket), and the result waits
  // for the output to end: it is read for a short while longer, then the rest of the command's
  // process group is ended and the output closed.
  let leftover: NodeJS.Timeout | undefined;
  child.once('exit', () => {
    leftover = setTimeout(() => {
      killGroup('SIGKILL');
      for (const rl of lineReaders) rl.close();
      child.stdout?.destroy();
      child.stderr?.destroy();
    }, options.leftoverGraceMs ?? LEFTOVER_GRACE_MS);
  });

  try {
    const result = await child;
    await Promise.all(readers);
    const started = child.pid !== undefined;
    return {
      exitCode: result.exitCode,
      signal: result.signal,
      lines,
      aborted,
      timedOut,
      spawnError: !started ? (result.shortMessage ?? `cannot run ${file}`) : undefined,
    };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (timeout) clearTimeout(timeout);
    clearTimeout(leftover);
    // keep the SIGKILL timer only while something of the group still lives
    if (killTimer && !groupAlive(child.pid)) clearTimeout(killTimer);
  }
}

function groupAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One-line summary of the last lines of output, for log lines and outcome messages. */
export function tail(lines: readonly string[], count = 3): string {
  return lines
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(-count)
    .join(' | ');
}

/** "exit code 3" / "killed by SIGTERM" / "could not start: ..." */
export function describeExit(r: RunResult): string {
  if (r.spawnError) return `could not start: ${r.spawnError}`;
  if (r.timedOut) return 'timed out';
  if (r.aborted) return 'aborted';
  if (r.signal) return `killed by ${r.signal}`;
  return `exit code ${r.exitCode}`;
}
