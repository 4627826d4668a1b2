/**
 * journald log source: `journalctl` for the request's time window, streamed into the archive.
 *
 * Reads the system journal, or a journal `directory`, or journal `files` (paths or globs, as
 * journalctl's --file takes them). Bounds are passed as absolute UTC epoch times (`@seconds`), so
 * neither the local time zone nor the clock's current time matters.
 */
import { execa } from 'execa';
import { defineAdapter, type LogSink, type LogSource, type LogWindow } from '../../core/api.js';

const OUTPUTS = ['short-iso-precise', 'short-iso', 'json', 'export', 'cat'] as const;
type Output = (typeof OUTPUTS)[number];

export interface JournaldOptions {
  /** journal directory (journalctl --directory); default: the system journal */
  directory?: string;
  /** journal files or globs (journalctl --file) */
  files?: string[];
  /** only these systemd units (-u, any of them) */
  units?: string[];
  /** only these syslog identifiers (-t, any of them) */
  identifiers?: string[];
  /** maximum priority (-p), e.g. "info" or "0..4" */
  priority?: string;
  output?: Output;
  /** file name in the archive */
  name?: string;
  /** the journalctl program (looked up on PATH of the daemon's environment) */
  journalctl?: string;
  logTypes?: string[];
}

const NAMES: Record<Output, string> = {
  'short-iso-precise': 'journal.log',
  'short-iso': 'journal.log',
  cat: 'journal.log',
  json: 'journal.jsonl',
  export: 'journal.export',
};

/** journalctl arguments for `window` (exported for tests and the benchmark). */
export function journalctlArgs(o: JournaldOptions, window: LogWindow): string[] {
  const args = ['--no-pager', '--quiet', '--utc', '--output', o.output ?? 'short-iso-precise'];
  if (o.directory) args.push('--directory', o.directory);
  for (const f of o.files ?? []) args.push(`--file=${f}`);
  if (window.since) args.push('--since', epoch(window.since));
  if (window.until) args.push('--until', epoch(window.until));
  for (const u of o.units ?? []) args.push('--unit', u);
  for (const t of o.identifiers ?? []) args.push('--identifier', t);
  if (o.priority) args.push('--priority', o.priority);
  return args;
}

function epoch(d: Date): string {
  return `@${(d.getTime() / 1000).toFixed(3)}`;
}

export default defineAdapter({
  slot: 'logSources',
  type: 'journald',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      directory: { type: 'string', minLength: 1 },
      files: { type: 'array', items: { type: 'string', minLength: 1 } },
      units: { type: 'array', items: { type: 'string', minLength: 1 } },
      identifiers: { type: 'array', items: { type: 'string', minLength: 1 } },
      priority: { type: 'string', pattern: '^[a-z0-9.]+$' },
      output: { enum: [...OUTPUTS], default: 'short-iso-precise' },
      name: { type: 'string', minLength: 1 },
      journalctl: { type: 'string', minLength: 1, default: 'journalctl' },
      logTypes: { type: 'array', items: { type: 'string', minLength: 1 } },
    },
  },
  create(options, deps): LogSource {
    const o = options as JournaldOptions;
    for (const v of [...(o.units ?? []), ...(o.identifiers ?? [])]) {
      if (v.startsWith('-')) throw new Error(`journald: unit/identifier "${v}" must not start with '-'`);
    }
    return {
      type: 'journald',
      logTypes: o.logTypes,
      async collect(window: LogWindow, sink: LogSink, signal: AbortSignal): Promise<void> {
        const args = journalctlArgs(o, window);
        deps.log.debug({ args }, 'running journalctl');
        const child = execa(o.journalctl ?? 'journalctl', args, {
          env: deps.env,
          extendEnv: false,
          stdin: 'ignore',
          buffer: { stdout: false, stderr: true },
          maxBuffer: { stderr: 64 * 1024 },
          cancelSignal: signal,
          reject: false,
          stripFinalNewline: false,
        });
        const staged = sink.add({
          name: o.name ?? NAMES[o.output ?? 'short-iso-precise'],
          content: child.stdout!,
          mtime: window.until && window.until.getTime() < Date.now() ? window.until : new Date(),
        });
        const [addResult, result] = await Promise.allSettled([staged, child]);
        signal.throwIfAborted();
        const r = result.status === 'fulfilled' ? result.value : undefined;
        if (!r || r.failed) {
          const stderr = String(r?.stderr ?? '').trim().slice(-500);
          const why = r?.exitCode !== undefined ? `exited with ${r.exitCode}` : (r?.shortMessage ?? String((result as PromiseRejectedResult).reason));
          const msg = `journalctl ${why}${stderr ? `: ${stderr}` : ''}`;
          sink.note(msg);
          if (r?.exitCode === undefined || addResult.status === 'rejected') throw new Error(msg);
          return;
        }
        if (addResult.status === 'rejected') throw addResult.reason;
      },
    };
  },
});
