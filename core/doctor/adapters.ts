/**
 * Per-adapter checks: the tools each bound adapter calls are present and answer. Only read-only
 * commands run (`rauc status`, `systemctl show`, `timedatectl show`, `journalctl --version`);
 * install, reboot and clock-setting programs are only looked up, never started.
 */
import { existsSync } from 'node:fs';
import { glob } from 'tinyglobby';
import { checkArgv, firstLine, probe, readable, resolveExecutable } from './tools.js';
import { fail, pass, warn, type CheckResult, type Env } from './types.js';

export type Options = Record<string, unknown>;
type AdapterCheck = (name: string, o: Options, env: Env) => Promise<CheckResult[]>;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Row for "program X is installed"; undefined when it is. */
async function need(check: string, program: string, env: Env, fix: string): Promise<CheckResult | undefined> {
  const found = await resolveExecutable(program, env);
  return 'error' in found ? fail(check, found.error, fix) : undefined;
}

async function fileOption(check: string, file: string | undefined, what: string, fix: string): Promise<CheckResult[]> {
  if (!file) return [];
  const why = await readable(file);
  return [why ? fail(check, `${what}: ${why}`, fix) : pass(check, `${what}: ${file} readable`)];
}

const rauc: AdapterCheck = async (name, o, env) => {
  const missing = await need(`${name}: rauc`, 'rauc', env, 'install RAUC on the board image (meta-rauc, or the rauc package), or bind another installer');
  if (missing) return [missing];
  const rows: CheckResult[] = [];
  const version = await probe(['rauc', '--version'], env);
  rows.push(version.exitCode === 0 ? pass(`${name}: rauc`, version.stdout.trim()) : fail(`${name}: rauc`, `rauc --version: ${firstLine(version)}`, 'reinstall RAUC'));
  rows.push(...(await fileOption(`${name}: confPath`, str(o.confPath), 'system.conf', 'point confPath at the RAUC system.conf of this board (usually /etc/rauc/system.conf)')));
  rows.push(...(await fileOption(`${name}: keyring`, str(o.keyring), 'keyring', 'point keyring at the CA certificate that signs the bundles, or drop it to use the one in system.conf')));
  const busEnv = str(o.busAddress) ? { ...env, DBUS_SYSTEM_BUS_ADDRESS: str(o.busAddress) } : env;
  const conf = str(o.confPath) ? [`--conf=${str(o.confPath)}`] : [];
  const status = await probe(['rauc', ...conf, 'status', '--output-format=json'], busEnv, 30_000);
  const bus = str(o.busAddress) ?? env.DBUS_SYSTEM_BUS_ADDRESS ?? 'the default system bus';
  if (status.exitCode === 0) {
    try {
      const json = JSON.parse(status.stdout.split('\n').find((l) => l.trimStart().startsWith('{')) ?? '') as { compatible?: string; booted?: string; slots?: unknown[] };
      rows.push(pass(`${name}: service`, `rauc status: compatible ${json.compatible ?? '?'}, booted ${json.booted ?? '?'}, ${json.slots?.length ?? 0} slots`));
    } catch {
      rows.push(fail(`${name}: service`, 'rauc status printed no readable JSON', 'check that this RAUC supports --output-format=json (RAUC 1.0 or newer)'));
    }
  } else {
    const line = firstLine(status);
    if (/D-Bus|proxy|Could not connect|dbus|name is not activatable|ServiceUnknown/i.test(status.stderr + (status.error ?? ''))) {
      rows.push(fail(`${name}: service`, `the RAUC service does not answer on ${bus}: ${line}`,
        'start the RAUC service (rauc.service, or D-Bus activation of de.pengutronix.rauc) and make sure the daemon reaches that bus (busAddress / DBUS_SYSTEM_BUS_ADDRESS)'));
    } else if (/booted slot not found|Bootname/i.test(status.stderr)) {
      rows.push(fail(`${name}: service`, `rauc status: ${line}`, 'RAUC cannot tell the booted slot: add rauc.slot=<bootname> to the kernel command line, or fix bootname= in system.conf'));
    } else {
      rows.push(fail(`${name}: service`, `rauc status: ${line}`, 'run `rauc status` by hand and fix what it reports'));
    }
  }
  if (o.healthCheck !== undefined) rows.push(await checkArgv(`${name}: healthCheck`, o.healthCheck, env, 'healthCheck'));
  return rows;
};

const swupdate: AdapterCheck = async (name, o, env) => {
  const missing = await need(`${name}: swupdate`, 'swupdate', env, 'install SWUpdate on the board image (meta-swupdate, or the swupdate package), or bind another installer');
  if (missing) return [missing];
  const rows: CheckResult[] = [];
  const help = await probe(['swupdate', '-h'], env);
  const signed = /--key\b/.test(help.stdout + help.stderr);
  rows.push(help.exitCode === 0
    ? pass(`${name}: swupdate`, `${(help.stdout.split('\n')[0] ?? 'swupdate').trim()}${signed ? ', signed images' : ''}`)
    : fail(`${name}: swupdate`, `swupdate -h: ${firstLine(help)}`, 'reinstall SWUpdate'));
  const key = str(o.publicKey);
  if (key) {
    rows.push(...(await fileOption(`${name}: publicKey`, key, 'publicKey', 'point publicKey at the CA/public key that signs the .swu files (swupdate -k)')));
  } else if (signed) {
    rows.push(fail(`${name}: publicKey`, 'publicKey is not set, and this SWUpdate is built for signed images (it refuses to install without -k)', 'set publicKey to the CA/public key that signs the .swu files'));
  }
  if (!str(o.hardware) && !existsSync('/etc/hwrevision')) {
    rows.push(warn(`${name}: hardware`, 'no hardware option and no /etc/hwrevision: images that declare hardware-compatibility are refused', 'set hardware to "<board>:<revision>", or ship /etc/hwrevision in the image'));
  }
  const tmp = str(o.tmpDir);
  if (tmp) {
    const why = await readable(tmp, true);
    rows.push(why ? fail(`${name}: tmpDir`, why, 'create tmpDir (writable by the daemon) or drop the option') : pass(`${name}: tmpDir`, tmp));
  }
  if (o.confirmCommand !== undefined) rows.push(await checkArgv(`${name}: confirmCommand`, o.confirmCommand, env, 'confirmCommand'));
  return rows;
};

const script: AdapterCheck = async (name, o, env) => [
  await checkArgv(`${name}: command`, o.command, env, 'command'),
  ...(o.verify !== undefined ? [await checkArgv(`${name}: verify`, o.verify, env, 'verify')] : []),
];

const systemd: AdapterCheck = async (name, o, env) => {
  const unit = str(o.unit) ?? 'everest.service';
  const missing = await need(`${name}: systemctl`, 'systemctl', env, 'this board has no systemd: bind the power adapter "command" with your reboot and restart programs');
  if (missing) return [missing];
  const version = await probe(['systemctl', '--version'], env);
  if (version.exitCode !== 0) return [fail(`${name}: systemctl`, `systemctl --version: ${firstLine(version)}`, 'reinstall systemd')];
  const show = await probe(['systemctl', 'show', '--property=LoadState', unit], env);
  if (show.exitCode !== 0) {
    return [fail(`${name}: systemctl`, `systemctl show ${unit}: ${firstLine(show)}`,
      'systemctl cannot reach systemd (is systemd PID 1?); on boards without systemd bind the power adapter "command"')];
  }
  const state = /^LoadState=(\S*)/m.exec(show.stdout)?.[1];
  if (state === 'not-found') {
    return [fail(`${name}: unit`, `${unit} is not a unit on this board (LoadState=not-found); a Soft reset could not restart EVerest`, 'set adapters.power.unit to the unit that runs EVerest')];
  }
  return [pass(`${name}: systemctl`, `${(version.stdout.split('\n')[0] ?? '').trim()}; ${unit} LoadState=${state ?? 'unknown'}`)];
};

const powerCommand: AdapterCheck = async (name, o, env) => [
  await checkArgv(`${name}: reboot`, o.reboot, env, 'reboot'),
  await checkArgv(`${name}: restart`, o.restart, env, 'restart'),
];

const timedatectl: AdapterCheck = async (name, _o, env) => {
  const missing = await need(`${name}: timedatectl`, 'timedatectl', env, 'this board has no systemd-timedated: bind the clock adapter "date" (or "command")');
  if (missing) return [missing];
  const show = await probe(['timedatectl', 'show'], env);
  if (show.exitCode !== 0) {
    return [fail(`${name}: timedatectl`, `timedatectl show: ${firstLine(show)}`,
      'timedatectl needs systemd-timedated on the system D-Bus; on boards without it bind the clock adapter "date"')];
  }
  const field = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(show.stdout)?.[1];
  return [pass(`${name}: timedatectl`, `timedatectl show: Timezone=${field('Timezone') ?? '?'}, NTP=${field('NTP') ?? '?'}, NTPSynchronized=${field('NTPSynchronized') ?? '?'}`)];
};

const date: AdapterCheck = async (name, o, env) => {
  const rows = [await checkArgv(`${name}: date`, ['date'], env, 'date')];
  if (o.hwclock === true) {
    rows.push(await checkArgv(`${name}: hwclock`, ['hwclock'], env, 'hwclock'));
    if (!existsSync('/dev/rtc') && !existsSync('/dev/rtc0')) {
      rows.push(warn(`${name}: rtc`, 'hwclock is on but there is no /dev/rtc or /dev/rtc0', 'enable the RTC driver in the kernel, or set hwclock to false'));
    }
  }
  return rows;
};

const clockCommand: AdapterCheck = async (name, o, env) => [await checkArgv(`${name}: set`, o.set, env, 'set')];

const journald: AdapterCheck = async (name, o, env) => {
  const program = str(o.journalctl) ?? 'journalctl';
  const missing = await need(`${name}: journalctl`, program, env, 'install journalctl (systemd) or log to files and use the "files" log source');
  if (missing) return [missing];
  const rows: CheckResult[] = [];
  const version = await probe([program, '--version'], env);
  rows.push(version.exitCode === 0
    ? pass(`${name}: journalctl`, (version.stdout.split('\n')[0] ?? '').trim())
    : fail(`${name}: journalctl`, `${program} --version: ${firstLine(version)}`, 'reinstall journalctl'));
  const dir = str(o.directory);
  if (dir) {
    const why = await readable(dir, true);
    rows.push(why ? fail(`${name}: directory`, why, 'point directory at the journal directory (e.g. /var/log/journal)') : pass(`${name}: directory`, `${dir} readable`));
  }
  const files = Array.isArray(o.files) ? (o.files as string[]) : [];
  if (files.length) {
    const matched = await glob(files, { absolute: true, onlyFiles: true });
    rows.push(matched.length
      ? pass(`${name}: files`, `${matched.length} journal file(s) match`)
      : warn(`${name}: files`, `no file matches ${files.join(', ')}`, 'check the journal file paths'));
  }
  if (!dir && !files.length && !existsSync('/var/log/journal') && !existsSync('/run/log/journal')) {
    rows.push(warn(`${name}: journal`, 'neither /var/log/journal nor /run/log/journal exists: the system journal is empty', 'run systemd-journald (Storage=persistent keeps logs across reboots)'));
  }
  return rows;
};

const files: AdapterCheck = async (name, o) => {
  const patterns = Array.isArray(o.paths) ? (o.paths as string[]) : [];
  const matched = await glob(patterns, { absolute: true, onlyFiles: true, dot: true });
  return [matched.length
    ? pass(`${name}: paths`, `${matched.length} file(s) match ${patterns.join(', ')}`)
    : warn(`${name}: paths`, `no file matches ${patterns.join(', ')} yet`, 'check the paths, unless those logs only appear later')];
};

const nothingToCheck = (what: string): AdapterCheck => async (name) => [pass(name, what)];

/** Tool checks by slot and built-in type. */
export const ADAPTER_CHECKS: Record<string, Record<string, AdapterCheck>> = {
  installer: { rauc, swupdate, script, simulated: nothingToCheck('simulated (file-backed slots in the state dir; nothing on the board is installed)') },
  power: { systemd, command: powerCommand, simulated: nothingToCheck('simulated (reboots are only recorded)') },
  clock: { timedatectl, date, command: clockCommand, simulated: nothingToCheck('simulated (the system clock is never set)') },
  logSources: { journald, files, 'system-snapshot': nothingToCheck('system-snapshot (reads the kernel and /etc; asks the listed programs for their versions)') },
};
