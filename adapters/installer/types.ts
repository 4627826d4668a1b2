/**
 * Installer adapter: puts a downloaded, already verified firmware image on the board.
 * Bound by `adapters.installer` in plugins.config.json (rauc, swupdate, script, simulated, ...).
 */

/** Progress while installing; `status` lets an installer publish an explicit FirmwareUpdateStatus name. */
export interface InstallProgress {
  percent?: number;
  message?: string;
  /** a FirmwareUpdateStatusEnum name the installer itself reported (script adapter) */
  status?: string;
}

export interface InstallOutcome {
  /**
   * - `installed`: the new firmware is active now, no reboot needed (report Installed)
   * - `reboot-required`: written, becomes active after a reboot (report InstallRebooting, reboot, then confirm())
   * - `failed`: installation failed (InstallationFailed)
   * - `verification-failed`: the image was rejected by the installer's own check (InstallVerificationFailed)
   */
  result: 'installed' | 'reboot-required' | 'failed' | 'verification-failed';
  message?: string;
  /** opaque data the plugin persists with the transaction and hands back to confirm() after the reboot */
  confirmData?: Record<string, unknown>;
}

export interface ConfirmOutcome {
  /** `installed`: running the new image and it is committed (e.g. slot marked good) */
  result: 'installed' | 'failed' | 'verification-failed';
  message?: string;
}

export interface InstallerAdapter {
  readonly type: string;
  /**
   * Optional quick check of the downloaded file before permission is asked (e.g. `rauc info`
   * against the keyring, swupdate -c). `ok: false` ends the update with InstallVerificationFailed.
   */
  inspect?(file: string, signal: AbortSignal): Promise<{ ok: boolean; message?: string; version?: string }>;
  /** install; resolves with the outcome, never rejects for an ordinary install failure */
  install(file: string, options: { signal: AbortSignal; onProgress: (p: InstallProgress) => void }): Promise<InstallOutcome>;
  /**
   * Called once on the first start after the reboot that followed `reboot-required`:
   * check that the new image is the one running, run health checks, commit it (mark good)
   * or leave it uncommitted so the bootloader falls back.
   */
  confirm(confirmData: Record<string, unknown>): Promise<ConfirmOutcome>;
}
