/** Board checks: the state directory is writable, it has room for an image, the clock is sane. */
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { fail, pass, warn, type CheckResult } from './types.js';

/** Free bytes below which log upload and firmware download cannot work (the firmware plugin's default minFreeBytes). */
export const DEFAULT_MIN_FREE_BYTES = 16 * 1024 * 1024;

async function nearestExisting(dir: string): Promise<string> {
  let d = path.resolve(dir);
  for (;;) {
    try {
      await fsp.stat(d);
      return d;
    } catch {
      const up = path.dirname(d);
      if (up === d) return d;
      d = up;
    }
  }
}

/** Creates, fsyncs and removes a probe file in the state dir; never creates the dir itself. */
export async function checkStateDir(stateDir: string): Promise<CheckResult> {
  const check = 'state dir';
  const fixPerm = `make ${stateDir} writable by the daemon's user (the systemd unit's StateDirectory= creates it as root, mode 0700)`;
  let st;
  try {
    st = await fsp.stat(stateDir);
  } catch {
    const parent = await nearestExisting(stateDir);
    try {
      await fsp.access(parent, constants.W_OK | constants.X_OK);
      return warn(check, `${stateDir} does not exist yet; the daemon creates it under ${parent} (writable)`, 'nothing to do, or create it now (StateDirectory= in the systemd unit does)');
    } catch {
      return fail(check, `${stateDir} does not exist and ${parent} is not writable`, fixPerm);
    }
  }
  if (!st.isDirectory()) return fail(check, `${stateDir} is not a directory`, 'point stateDir at a directory');
  const probe = path.join(stateDir, `.doctor-probe-${process.pid}`);
  try {
    const fh = await fsp.open(probe, 'wx', 0o600);
    try {
      await fh.writeFile('probe\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.unlink(probe);
    return pass(check, `${stateDir} writable (probe file created, synced, removed)`);
  } catch (err) {
    await fsp.unlink(probe).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EROFS' ? 'is on a read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'is not writable' : (err as Error).message;
    return fail(check, `${stateDir} ${why}`, code === 'EROFS' ? 'put stateDir on a writable partition (e.g. /var/lib or a data partition)' : fixPerm);
  }
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MiB`;

/** Free space where the state dir is (downloads land there) against what the firmware plugin needs. */
export async function checkFreeSpace(stateDir: string, firmware: { minFreeBytes?: number; maxImageBytes?: number } | undefined): Promise<CheckResult> {
  const check = 'free space';
  const dir = await nearestExisting(stateDir);
  const minFree = firmware?.minFreeBytes ?? DEFAULT_MIN_FREE_BYTES;
  const need = Math.max(minFree, firmware?.maxImageBytes ?? 0);
  const basis = firmware?.maxImageBytes
    ? `maxImageBytes ${mib(firmware.maxImageBytes)}`
    : firmware
      ? `minFreeBytes ${mib(minFree)} (maxImageBytes is not set)`
      : `default ${mib(minFree)}`;
  let free: number;
  try {
    const s = await fsp.statfs(dir);
    free = Number(s.bavail) * Number(s.bsize);
  } catch (err) {
    return fail(check, `cannot read free space of ${dir}: ${(err as Error).message}`, 'check the state dir path');
  }
  if (free < need) {
    return fail(check, `${mib(free)} free on ${dir}, need ${mib(need)} for ${basis}`, 'free space on that file system, move stateDir to a bigger partition, or lower maxImageBytes');
  }
  return pass(check, `${mib(free)} free on ${dir}, need ${mib(need)} for ${basis}`);
}

/** The clock is set (not the 1970 or build-date default of a board without RTC/NTP) and not absurdly far ahead. */
export function checkClock(now = new Date()): CheckResult {
  const check = 'clock';
  const year = now.getUTCFullYear();
  if (year < 2025) {
    return fail(check, `system time is ${now.toISOString()}: the clock was never set`,
      'enable NTP (or an RTC with a battery): TLS certificate checks, schedules and log windows all need the right time');
  }
  if (year > 2099) {
    return fail(check, `system time is ${now.toISOString()}: far in the future`, 'set the clock (date -u -s ...) and fix its source (RTC or NTP)');
  }
  return pass(check, `system time ${now.toISOString()}`);
}
