/**
 * systemd readiness, watchdog and shutdown notifications (sd_notify), soft-failing off systemd.
 *
 * systemd passes `NOTIFY_SOCKET` (an AF_UNIX datagram socket) to a `Type=notify` service, and
 * `WATCHDOG_USEC` (plus `WATCHDOG_PID`) when the unit sets `WatchdogSec=`. Node has no unix
 * datagram sockets, and the native `sd-notify` bindings would need a compiler and libsystemd
 * headers on the build host plus a `.node` file per board architecture, so the messages are sent
 * by `systemd-notify` (argv through execa, never a shell). Because the sender is then a child
 * process, the unit needs `NotifyAccess=all`; systemd-notify (since systemd 246) waits until the
 * manager has processed the message, so it is attributed to the unit even though it exits at once.
 *
 * Without `NOTIFY_SOCKET` every call is a no-op; a failing `systemd-notify` is logged once and
 * never stops the daemon.
 */
import type { Logger } from './api.js';

export interface SdNotifyOptions {
  /** environment of the daemon: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, PATH */
  env: Readonly<Record<string, string | undefined>>;
  log: Logger;
  /** pid to compare WATCHDOG_PID with (default process.pid) */
  pid?: number;
  /** program to run (default systemd-notify, looked up on env.PATH) */
  command?: string;
}

export interface SdNotifier {
  /** true when NOTIFY_SOCKET is set */
  readonly enabled: boolean;
  /** watchdog period in ms (half of WATCHDOG_USEC), undefined without a watchdog for this process */
  readonly watchdogIntervalMs: number | undefined;
  /** READY=1 (with an optional STATUS=), then starts the watchdog pings */
  ready(status?: string): Promise<void>;
  /** STATUS=<text> */
  status(text: string): Promise<void>;
  /** STOPPING=1 and stops the watchdog pings */
  stopping(): Promise<void>;
  /** stops the watchdog pings without telling systemd anything */
  close(): void;
}

/** Half of WATCHDOG_USEC in ms, when the watchdog is meant for this process (sd_watchdog_enabled). */
export function watchdogInterval(env: Readonly<Record<string, string | undefined>>, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2 / 1000));
}

export function createSdNotifier(options: SdNotifyOptions): SdNotifier {
  const { env, log } = options;
  const socket = env.NOTIFY_SOCKET;
  const interval = socket ? watchdogInterval(env, options.pid) : undefined;
  let timer: NodeJS.Timeout | undefined;
  let warned = false;

  const send = async (...assignments: string[]): Promise<void> => {
    if (!socket) return;
    const { execa } = await import('execa'); // loaded only under systemd (about 150 ms of imports otherwise)
    const result = await execa(options.command ?? 'systemd-notify', assignments, {
      env: env as Record<string, string>,
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: 5000,
    });
    if (result.failed && !warned) {
      warned = true;
      const why = result.exitCode === undefined ? (result.cause instanceof Error ? result.cause.message : result.shortMessage) : `exit ${result.exitCode}: ${String(result.stderr).trim()}`;
      log.warn({ socket, error: why }, 'sd_notify failed; systemd readiness and watchdog are not reported');
    }
  };

  return {
    enabled: !!socket,
    watchdogIntervalMs: interval,
    async ready(status) {
      await send('READY=1', ...(status ? [`STATUS=${status}`] : []));
      if (interval && !timer) {
        timer = setInterval(() => void send('WATCHDOG=1'), interval);
        timer.unref();
        log.info({ intervalMs: interval }, 'systemd watchdog pings started');
      }
    },
    status: (text) => send(`STATUS=${text}`),
    async stopping() {
      clearInterval(timer);
      timer = undefined;
      await send('STOPPING=1');
    },
    close() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
