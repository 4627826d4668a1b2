/**
 * Runs one OS tool for the power and clock adapters: execa with an argument array (never a
 * shell), the daemon's environment (so tests can put stand-ins first on PATH), and an error that
 * carries the tool's stderr when it fails.
 */
import { execa } from 'execa';

export interface RunOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** extra variables on top of `env` (e.g. TZ=UTC) */
  extraEnv?: Record<string, string>;
  /** kill the tool after this long (default 60 s) */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A tool that could not be started, exited non-zero, or timed out. */
export class ToolError extends Error {
  constructor(
    message: string,
    readonly argv: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'ToolError';
  }
}

export async function runTool(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new ToolError('empty command', argv, undefined, '');
  const result = await execa(file, args, {
    env: { ...options.env, ...options.extraEnv },
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: options.timeoutMs ?? 60_000,
    stripFinalNewline: true,
  });
  const stdout = typeof result.stdout === 'string' ? result.stdout : '';
  const stderr = typeof result.stderr === 'string' ? result.stderr.trim() : '';
  const cmd = argv.join(' ');
  if (result.timedOut) {
    throw new ToolError(`${cmd} timed out${stderr ? `: ${stderr}` : ''}`, argv, undefined, stderr);
  }
  if (result.failed && result.exitCode === undefined) {
    // could not start (ENOENT, EACCES) or killed by a signal
    const why = result.signal ? `killed by ${result.signal}` : (result.cause instanceof Error ? result.cause.message : result.shortMessage);
    throw new ToolError(`${cmd} failed: ${why}`, argv, undefined, stderr);
  }
  if (result.exitCode !== 0) {
    throw new ToolError(
      `${cmd} exited with code ${result.exitCode}${stderr ? `: ${stderr}` : ' (no error output)'}`,
      argv,
      result.exitCode,
      stderr,
    );
  }
  return { stdout, stderr };
}

/** JSON Schema of a non-empty argv array. */
export const ARGV_SCHEMA = {
  type: 'array',
  items: { type: 'string', minLength: 1 },
  minItems: 1,
} as const;
