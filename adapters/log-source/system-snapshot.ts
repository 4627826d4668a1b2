/**
 * system-snapshot log source: one JSON file describing the board at collection time (OS, kernel,
 * uptime, load, memory, disks, network interfaces, program versions), through `systeminformation`.
 * Each probe has a time limit; a probe that fails or times out is reported in the file.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { defineAdapter, type LogSink, type LogSource, type LogWindow } from '../../core/api.js';

/** One network interface: addresses from the kernel, state and link from /sys/class/net. */
export interface NetworkInterface {
  iface: string;
  mac?: string;
  operstate?: string;
  mtu?: number;
  speedMbps?: number;
  addresses: { family: string; address: string; cidr: string | null; internal: boolean }[];
}

/** Network interfaces without running a program: os.networkInterfaces() and /sys/class/net. */
export async function networkInterfaces(sysNet = '/sys/class/net'): Promise<NetworkInterface[]> {
  const byName = os.networkInterfaces();
  const names = new Set(Object.keys(byName));
  for (const name of await fsp.readdir(sysNet).catch(() => [] as string[])) names.add(name);
  const read = async (name: string, file: string) => {
    const text = await fsp.readFile(path.join(sysNet, name, file), 'utf8').catch(() => '');
    return text.trim() || undefined;
  };
  return Promise.all(
    [...names].sort().map(async (name) => {
      const [operstate, mtu, speed, mac] = await Promise.all(['operstate', 'mtu', 'speed', 'address'].map((f) => read(name, f)));
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

export interface SnapshotOptions {
  name?: string;
  /** programs whose versions are reported (systeminformation.versions names) */
  versions?: string[];
  probeTimeoutMs?: number;
  logTypes?: string[];
}

export default defineAdapter({
  slot: 'logSources',
  type: 'system-snapshot',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      name: { type: 'string', minLength: 1, default: 'system-snapshot.json' },
      versions: { type: 'array', items: { type: 'string', pattern: '^[a-zA-Z0-9_-]+$' }, default: ['kernel', 'node', 'openssl', 'systemd', 'rauc', 'swupdate'] },
      probeTimeoutMs: { type: 'integer', minimum: 100, default: 10000 },
      logTypes: { type: 'array', items: { type: 'string', minLength: 1 } },
    },
  },
  create(options, deps): LogSource {
    const o = options as SnapshotOptions;
    const timeout = o.probeTimeoutMs ?? 10_000;
    return {
      type: 'system-snapshot',
      logTypes: o.logTypes,
      async collect(window: LogWindow, sink: LogSink, signal: AbortSignal): Promise<void> {
        // loaded when a snapshot is collected, not at start-up
        const { default: si } = await import('systeminformation');
        const errors: Record<string, string> = {};
        const probe = async <T>(name: string, f: () => Promise<T>): Promise<T | undefined> => {
          let timer: NodeJS.Timeout | undefined;
          try {
            return await Promise.race([
              f(),
              new Promise<never>((_, reject) => {
                timer = setTimeout(() => reject(new Error(`no answer within ${timeout} ms`)), timeout);
              }),
            ]);
          } catch (err) {
            errors[name] = (err as Error).message;
            return undefined;
          } finally {
            clearTimeout(timer);
          }
        };
        const versionList = (o.versions ?? ['kernel', 'node', 'openssl', 'systemd', 'rauc', 'swupdate']).join(', ');
        // One probe at a time: several systeminformation probes run commands synchronously, and
        // all at once they block the daemon's event loop for about a second (longer on a slow
        // board), delaying replies and the communication check. One at a time, each block is short.
        const osInfo = await probe('osInfo', () => si.osInfo());
        const time = await probe('time', async () => si.time());
        const system = await probe('system', () => si.system());
        const cpu = await probe('cpu', () => si.cpu());
        const mem = await probe('mem', () => si.mem());
        const disks = await probe('disks', () => si.fsSize());
        // not si.networkInterfaces(): it runs commands synchronously per interface and held the
        // event loop for about 110 ms on an idle machine
        const network = await probe('network', () => networkInterfaces());
        // an empty list means no program versions: systeminformation would probe every program it knows
        const versions = versionList ? await probe('versions', () => si.versions(versionList)) : {};
        signal.throwIfAborted();
        const snapshot = {
          collectedAt: new Date().toISOString(),
          window: { since: window.since?.toISOString(), until: window.until?.toISOString() },
          hostname: os.hostname(),
          uptimeSeconds: os.uptime(),
          loadAverage: os.loadavg(),
          os: osInfo,
          time,
          system,
          cpu,
          memory: mem,
          disks,
          network,
          versions,
          ...(Object.keys(errors).length ? { errors } : {}),
        };
        if (Object.keys(errors).length) deps.log.debug({ errors }, 'some system probes failed');
        await sink.add({ name: o.name ?? 'system-snapshot.json', content: JSON.stringify(snapshot, null, 2) + '\n' });
      },
    };
  },
});
