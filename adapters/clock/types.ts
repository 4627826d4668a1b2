/** Clock adapter: sets the system clock. */
export interface ClockAdapter {
  readonly type: string;
  /** set the system clock to `time`; rejects when the underlying tool failed */
  setTime(time: Date): Promise<void>;
  /** whether NTP currently keeps the clock synchronised; undefined when unknown */
  ntpSynchronized?(): Promise<boolean | undefined>;
  /**
   * the adapter's current time, when it differs from the process clock (the `simulated` adapter
   * keeps an offset instead of setting the clock); callers fall back to `new Date()`
   */
  now?(): Date;
}
