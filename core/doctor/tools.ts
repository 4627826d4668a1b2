/**
 * Read-only probing of OS tools for the doctor: find a program the way the daemon would (bare
 * names on the daemon's PATH, paths as given), and run read-only commands (execa, argv, never a
 * shell) with a timeout.
 */
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { fail, pass, type CheckResult, type Env } from './types.js';

/** Absolute path of an executable program, or a reason why there is none. */
export async function resolveExecutable(command: string, env: Env): Promise<{ path: string } | { error: string }> {
  const isExecutableFile = async (file: string): Promise<string | undefined> => {
    try {
      const st = await fsp.stat(file);
      if (!st.isFile()) return 'is not a file';
      await fsp.access(file, constants.X_OK);
      return undefined;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not executable' : (err as Error).message;
    }
  };
  if (command.includes('/')) {
    const why = await isExecutableFile(command);
    return why ? { error: `${command} ${why}` } : { path: path.resolve(command) };
  }
  const dirs = (env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const dir of dirs) {
    const candidate = path.join(dir, command);
    if ((await isExecutableFile(candidate)) === undefined) return { path: candidate };
  }
  return { error: `${command} is not on PATH (${dirs.join(path.delimiter) || 'PATH is empty'})` };
}

/** A row for "this configured argv can be started" (argv[0] exists and is executable). */
export async function checkArgv(check: string, argv: unknown, env: Env, what: string): Promise<CheckResult> {
  if (!Array.isArray(argv) || typeof argv[0] !== 'string') return fail(check, `${what} is not an argv array`, `set ${what} to an array of strings, program first`);
  const found = await resolveExecutable(argv[0], env);
  if ('error' in found) {
    return fail(check, `${what}: ${found.error}`, `install the program, or fix ${what}[0] (an absolute path, or a name on the daemon's PATH); make it executable (chmod +x)`);
  }
  return pass(check, `${what}: ${found.path}`);
}

export interface ProbeResult {
  exitCode?: number;
  stdout: string;
  stderr: string;
  /** could not start, killed or timed out */
  error?: string;
}

/** Runs a read-only command. Never throws. */
export async function probe(argv: readonly string[], env: Env, timeoutMs = 10_000): Promise<ProbeResult> {
  const [file, ...args] = argv;
  const r = await execa(file!, args, { env: env as Record<string, string>, extendEnv: false, reject: false, stdin: 'ignore', timeout: timeoutMs });
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  const stderr = typeof r.stderr === 'string' ? r.stderr.trim() : '';
  if (r.timedOut) return { stdout, stderr, error: `no answer within ${timeoutMs / 1000} s` };
  if (r.exitCode === undefined) return { stdout, stderr, error: r.cause instanceof Error ? r.cause.message : r.shortMessage };
  return { exitCode: r.exitCode, stdout, stderr };
}

/** The first non-empty line of a tool's error output (or stdout), for a detail column. */
export function firstLine(r: ProbeResult): string {
  const text = r.error ?? (r.stderr || r.stdout);
  return text.split('\n').map((l) => l.trim()).find(Boolean) ?? `exit code ${r.exitCode ?? '?'}`;
}

/** A readable regular file (or directory with `dir`). */
export async function readable(file: string, dir = false): Promise<string | undefined> {
  try {
    const st = await fsp.stat(file);
    if (dir ? !st.isDirectory() : !st.isFile()) return `${file} is not a ${dir ? 'directory' : 'file'}`;
    await fsp.access(file, dir ? constants.R_OK | constants.X_OK : constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${file} does not exist` : code === 'EACCES' ? `${file} is not readable` : (err as Error).message;
  }
}
