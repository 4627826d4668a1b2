/** Power adapter: reboots the board or restarts the charging application. */
export interface PowerAdapter {
  readonly type: string;
  /** reboot the board (Hard reset, or activating new firmware) */
  reboot(): Promise<void>;
  /** restart the charging application only, e.g. `systemctl restart everest.service` (Soft reset) */
  restartApplication(): Promise<void>;
}
