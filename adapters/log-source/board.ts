/**
 * What the system snapshot says about the board, read from the kernel and /etc without running
 * a program: the daemon's event loop answers EVerest while a snapshot is taken, and a program run
 * synchronously (as several systeminformation probes do, through a shell) stops it for the whole
 * run of that program.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';

const readText = async (file: string): Promise<string | undefined> => {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
};

const readTrimmed = async (file: string): Promise<string | undefined> => {
  // device-tree strings end in NUL; dmi ones in a newline
  const text = (await readText(file))?.replace(/\0+$/, '').trim();
  return text || undefined;
};

/** One network interface: addresses from the kernel, state and link from /sys/class/net. */
export interface NetworkInterface {
  iface: string;
  mac?: string;
  operstate?: string;
  mtu?: number;
  speedMbps?: number;
  addresses: { family: string; address: string; cidr: string | null; internal: boolean }[];
}

/** Network interfaces: os.networkInterfaces() and /sys/class/net. */
export async function networkInterfaces(sysNet = '/sys/class/net'): Promise<NetworkInterface[]> {
  const byName = os.networkInterfaces();
  const names = new Set(Object.keys(byName));
  for (const name of await fsp.readdir(sysNet).catch(() => [] as string[])) names.add(name);
  return Promise.all(
    [...names].sort().map(async (name) => {
      const [operstate, mtu, speed, mac] = await Promise.all(['operstate', 'mtu', 'speed', 'address'].map((f) => readTrimmed(path.join(sysNet, name, f))));
      const addrs = byName[name] ?? [];
      return {
        iface: name,
        mac: mac ?? addrs[0]?.mac,
        operstate,
        mtu: mtu === undefined ? undefined : Number(mtu),
        // -1 (or unreadable) when the link is down or has no speed
        speedMbps: speed !== undefined && Number(speed) > 0 ? Number(speed) : undefined,
        addresses: addrs.map((a) => ({ family: a.family, address: a.address, cidr: a.cidr, internal: a.internal })),
      };
    }),
  );
}

/** `KEY=value` lines of os-release(5), quotes and escapes removed */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2]!;
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) value = value.slice(1, -1);
    out[m[1]!] = value.replace(/\\(["'$`\\])/g, '$1');
  }
  return out;
}

export interface OsInfo {
  platform: string;
  distro?: string;
  release?: string;
  codename?: string;
  id?: string;
  kernel: string;
  arch: string;
  hostname: string;
}

/** The OS from os-release(5) (/etc, then /usr/lib) and the kernel from uname. */
export async function osInfo(files = ['/etc/os-release', '/usr/lib/os-release']): Promise<OsInfo> {
  let release: Record<string, string> = {};
  for (const file of files) {
    const text = await readText(file);
    if (text !== undefined) {
      release = parseOsRelease(text);
      break;
    }
  }
  return {
    platform: os.platform(),
    distro: release.PRETTY_NAME ?? release.NAME,
    release: release.VERSION_ID ?? release.BUILD_ID,
    codename: release.VERSION_CODENAME,
    id: release.ID,
    kernel: os.release(),
    arch: os.arch(),
    hostname: os.hostname(),
  };
}

/** read once: building an Intl.DateTimeFormat costs about a millisecond, and Node keeps its zone anyway */
let timezone: string | undefined;

/** The clock as the daemon sees it: time, time zone and UTC offset, uptime. */
export function clockInfo(now = new Date()): { current: string; timezone: string; utcOffsetMinutes: number; uptimeSeconds: number } {
  timezone ??= Intl.DateTimeFormat().resolvedOptions().timeZone;
  return {
    current: now.toISOString(),
    timezone,
    utcOffsetMinutes: -now.getTimezoneOffset(),
    uptimeSeconds: os.uptime(),
  };
}

/**
 * The board: the device tree's model and compatible strings (ARM boards) and the firmware's DMI
 * table (x86); fields the kernel does not expose, or only to root, are left out.
 */
export async function boardIdentity(root = '/'): Promise<Record<string, string | string[]>> {
  const dt = path.join(root, 'proc/device-tree');
  const dmi = path.join(root, 'sys/class/dmi/id');
  const out: Record<string, string | string[]> = {};
  const model = await readTrimmed(path.join(dt, 'model'));
  if (model) out.model = model;
  const compatible = await readText(path.join(dt, 'compatible'));
  if (compatible) out.compatible = compatible.split('\0').filter(Boolean);
  const serial = await readTrimmed(path.join(dt, 'serial-number'));
  if (serial) out.serialNumber = serial;
  const fields = ['sys_vendor', 'product_name', 'product_version', 'product_serial', 'board_vendor', 'board_name', 'board_version', 'bios_vendor', 'bios_version', 'bios_date'];
  const values = await Promise.all(fields.map((f) => readTrimmed(path.join(dmi, f))));
  fields.forEach((f, i) => {
    if (values[i]) out[f] = values[i]!;
  });
  return out;
}

/** file systems without storage of their own: nothing to report about their space */
const PSEUDO_FS = new Set([
  'autofs', 'binfmt_misc', 'bpf', 'cgroup', 'cgroup2', 'configfs', 'debugfs', 'devpts', 'devtmpfs', 'efivarfs',
  'fusectl', 'hugetlbfs', 'mqueue', 'nsfs', 'proc', 'pstore', 'ramfs', 'rpc_pipefs', 'securityfs', 'selinuxfs',
  'sysfs', 'tracefs', 'squashfs',
]);

export interface MountedFs {
  fs: string;
  type: string;
  mount: string;
  readOnly: boolean;
  size: number;
  used: number;
  available: number;
  usePercent: number;
}

/** a mount table field: spaces, tabs, newlines and backslashes are octal escapes (\040 ...) */
const unescapeMountField = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/**
 * Mounted file systems with storage (as `df` lists them): the mount table from /proc/self/mounts,
 * the space from statfs(2). A mount that cannot be asked (a vanished network share) is skipped.
 */
export async function mountedFilesystems(mounts = '/proc/self/mounts'): Promise<MountedFs[]> {
  const table = (await readText(mounts)) ?? '';
  const byMount = new Map<string, { fs: string; type: string; mount: string; readOnly: boolean }>();
  for (const line of table.split('\n')) {
    const [dev, mnt, type, opts] = line.split(' ');
    if (!dev || !mnt || !type || PSEUDO_FS.has(type)) continue;
    const mount = unescapeMountField(mnt);
    // a later mount on the same point hides the earlier one (and is listed where it was mounted)
    byMount.delete(mount);
    byMount.set(mount, { fs: unescapeMountField(dev), type, mount, readOnly: (opts ?? '').split(',').includes('ro') });
  }
  const out: MountedFs[] = [];
  for (const e of byMount.values()) {
    let st: Awaited<ReturnType<typeof fsp.statfs>>;
    try {
      st = await fsp.statfs(e.mount);
    } catch {
      continue;
    }
    if (st.blocks === 0) continue;
    const size = st.blocks * st.bsize;
    const used = (st.blocks - st.bfree) * st.bsize;
    const available = st.bavail * st.bsize;
    // as df computes Use%: used / (used + available), rounded up
    const usePercent = used + available > 0 ? Math.ceil((used / (used + available)) * 1000) / 10 : 0;
    out.push({ ...e, size, used, available, usePercent });
  }
  return out;
}
