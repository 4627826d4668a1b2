import type { Readable } from 'node:stream';

/** Time window of a log request; either bound may be absent. */
export interface LogWindow {
  since?: Date;
  until?: Date;
}

/** Where a log source writes its entries; one call per file in the archive. */
export interface LogSink {
  /**
   * Add one file to the archive. `mtime` orders content for the size cap (oldest dropped first).
   * `size` must be given when `content` is a stream.
   */
  add(entry: { name: string; content: Readable | Buffer | string; mtime?: Date; size?: number }): Promise<void>;
}

/** Log source adapter: contributes files for a time window to a log archive. */
export interface LogSource {
  readonly type: string;
  /** log types this source serves (e.g. DiagnosticsLog, SecurityLog); undefined = all */
  readonly logTypes?: readonly string[];
  collect(window: LogWindow, sink: LogSink, signal: AbortSignal): Promise<void>;
}
