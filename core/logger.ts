import { pino, type DestinationStream } from 'pino';
import type { Logger } from './api.js';

export interface LoggerOptions {
  level: string;
  /** one readable line per entry instead of JSON */
  pretty?: boolean;
  /** where to write; default stdout */
  destination?: DestinationStream;
}

let lastMs = Number.NaN;
let lastTime = '';
/** pino's isoTime, formatted once per millisecond: the lines of a batch share it */
function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

/** A structured logger that writes JSON lines to stdout (journald picks them up). */
export function createLogger(options: LoggerOptions): Logger {
  const base = { level: options.level, base: undefined as undefined, timestamp: isoTime };
  if (options.pretty && !options.destination) {
    return pino(base, prettyDestination()) as unknown as Logger;
  }
  return pino(base, options.destination ?? pino.destination({ dest: 1, sync: true })) as unknown as Logger;
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Minimal human-readable output: `time LEVEL [plugin] message key=value ...`. */
function prettyDestination(): DestinationStream {
  return {
    write(line: string) {
      try {
        const { time, level, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const scope = rest.plugin ? `[${String(rest.plugin)}] ` : '';
        delete rest.plugin;
        const extras = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        process.stdout.write(`${String(time).slice(11, 23)} ${(LEVELS[level as number] ?? level) as string} ${scope}${msg ?? ''}${extras ? ` ${extras}` : ''}\n`);
      } catch {
        process.stdout.write(line);
      }
    },
  };
}
