/** Clock adapter: sets the system clock. */
export interface ClockAdapter {
  readonly type: string;
  /** set the system clock to `time`; rejects when the underlying tool failed */
  setTime(time: Date): Promise<void>;
  /** whether NTP currently keeps the clock synchronised; undefined when unknown */
  ntpSynchronized?(): Promise<boolean | undefined>;
}
