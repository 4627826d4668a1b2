import type { Readable } from 'node:stream';

/** Time window of a log request; either bound may be absent. */
export interface LogWindow {
  since?: Date;
  until?: Date;
}

/** Where a log source writes its entries; one call per file in the archive. */
export interface LogSink {
  /**
   * Add one file to the archive. The content is streamed (and redacted line by line) to disk,
   * so streams of unknown length are fine; `size` is only a hint. `mtime` orders content for the
   * size cap (the oldest is dropped first); absent means "now". `name` is a relative path inside
   * the archive (sanitised and made unique by the sink).
   */
  add(entry: { name: string; content: Readable | Buffer | string; mtime?: Date; size?: number }): Promise<void>;
  /** Record a remark for the archive's manifest (file skipped, tool failed, ...). */
  note(message: string): void;
}

/** Log source adapter: contributes files for a time window to a log archive. */
export interface LogSource {
  readonly type: string;
  /** log types this source serves (e.g. DiagnosticsLog, SecurityLog); undefined = all */
  readonly logTypes?: readonly string[];
  /**
   * Add this source's files for `window` to `sink`. Rejects only when the source failed as a whole
   * (the request still goes on with the other sources); stops early when `signal` aborts.
   */
  collect(window: LogWindow, sink: LogSink, signal: AbortSignal): Promise<void>;
}
