/**
 * system-snapshot log source: one JSON file describing the board at collection time (OS, kernel,
 * board, clock, uptime, load, CPU, memory, disks, network interfaces, program versions).
 *
 * Nothing here stops the daemon's event loop: the board is read from the kernel and /etc
 * (./board.ts), memory through `systeminformation` (which reads /proc/meminfo), and program
 * versions by running each program with an argument array, asynchronously, one at a time, at most
 * once per VERSION_TTL_MS. Each probe has a time limit; a probe that fails or times out is
 * reported in the file. A cancelled collection (a newer log request) stops before its next probe.
 */
import * as os from 'node:os';
import { defineAdapter, type LogSink, type LogSource, type LogWindow } from '../../core/api.js';
import { boardIdentity, clockInfo, mountedFilesystems, networkInterfaces, osInfo } from './board.js';

export { networkInterfaces, type NetworkInterface } from './board.js';

/** How each program's version is asked for (no shell), and where the version is in the answer. */
export const VERSION_PROBES: Record<string, { argv: [string, ...string[]]; pattern: RegExp }> = {
  openssl: { argv: ['openssl', 'version'], pattern: /OpenSSL\s+(\S+)/ },
  systemd: { argv: ['systemctl', '--version'], pattern: /^systemd\s+(.+)$/m },
  rauc: { argv: ['rauc', '--version'], pattern: /^rauc\s+(\S+)/m },
  // SWUpdate prints its version in the first line of its help ("SWUpdate v2023.05", or the build date)
  swupdate: { argv: ['swupdate', '--help'], pattern: /^SWUpdate v(\S+)|^swupdate \((.+)\)/m },
  mosquitto: { argv: ['mosquitto', '-h'], pattern: /mosquitto version (\S+)/ },
};

let execaModule: Promise<typeof import('execa')> | undefined;
let siModule: Promise<{ default: typeof import('systeminformation') }> | undefined;

/** how long a program's answer to "which version" is reused */
export const VERSION_TTL_MS = 10 * 60_000;

const DEFAULT_VERSIONS = ['kernel', 'node', 'openssl', 'systemd', 'rauc', 'swupdate'];

/**
 * A program's version, or null when it is not installed. The program runs without a shell, in
 * the C locale, with its output capped; the first line is reported when the pattern does not match.
 */
export async function programVersion(
  p: { argv: [string, ...string[]]; pattern: RegExp },
  opts: { timeoutMs: number; env: NodeJS.ProcessEnv; signal?: AbortSignal },
): Promise<string | null> {
  const { timeoutMs, signal } = opts;
  execaModule ??= import('execa'); // loaded with the first snapshot, not at start-up
  const { execa } = await execaModule;
  const r = await execa(p.argv[0], p.argv.slice(1), {
    reject: false, all: true, stdin: 'ignore', timeout: timeoutMs, cancelSignal: signal, maxBuffer: 64 * 1024,
    env: { ...opts.env, LC_ALL: 'C' }, extendEnv: false, stripFinalNewline: true,
  });
  if ((r as { code?: string }).code === 'ENOENT') return null;
  if (r.timedOut) throw new Error(`no answer within ${timeoutMs} ms`);
  if (r.isCanceled) throw signal?.reason instanceof Error ? signal.reason : new Error('cancelled');
  const text = String(r.all ?? '');
  const m = p.pattern.exec(text);
  const found = m?.slice(1).find((g) => g !== undefined);
  return (found ?? text.split('\n')[0] ?? '').trim().slice(0, 200) || null;
}

export interface SnapshotOptions {
  name?: string;
  /** programs whose versions are reported: kernel, node and the keys of VERSION_PROBES */
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
      versions: { type: 'array', items: { enum: ['kernel', 'node', ...Object.keys(VERSION_PROBES)] }, default: DEFAULT_VERSIONS },
      probeTimeoutMs: { type: 'integer', minimum: 100, default: 10000 },
      logTypes: { type: 'array', items: { type: 'string', minLength: 1 } },
    },
  },
  create(options, deps): LogSource {
    const o = options as SnapshotOptions;
    const timeout = o.probeTimeoutMs ?? 10_000;
    const wanted = o.versions ?? DEFAULT_VERSIONS;
    // versions change with a package upgrade, not between two log requests: each program is
    // asked at most once per VERSION_TTL_MS (a failed or timed-out answer is not kept)
    const known = new Map<string, { at: number; value: string | null }>();
    const versionOf = async (name: string, signal: AbortSignal): Promise<string | null> => {
      const hit = known.get(name);
      if (hit && Date.now() - hit.at < VERSION_TTL_MS) return hit.value;
      const value = await programVersion(VERSION_PROBES[name]!, { timeoutMs: timeout, env: deps.env, signal });
      known.set(name, { at: Date.now(), value });
      return value;
    };
    return {
      type: 'system-snapshot',
      logTypes: o.logTypes,
      async collect(window: LogWindow, sink: LogSink, signal: AbortSignal): Promise<void> {
        const errors: Record<string, string> = {};
        const probe = async <T>(name: string, f: () => Promise<T> | T): Promise<T | undefined> => {
          // a newer log request cancelled this one: stop here rather than after every probe
          signal.throwIfAborted();
          let timer: NodeJS.Timeout | undefined;
          try {
            return await Promise.race([
              Promise.resolve().then(f),
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
        const osDesc = await probe('os', () => osInfo());
        const board = await probe('board', () => boardIdentity());
        const clock = clockInfo();
        const cpus = os.cpus();
        const cpu = { model: cpus[0]?.model.trim(), cores: cpus.length, speedMHz: cpus[0]?.speed || undefined, arch: os.arch() };
        // loaded when a snapshot is collected, not at start-up; mem() reads /proc/meminfo
        const memory = await probe('memory', async () => (await (siModule ??= import('systeminformation'))).default.mem());
        const disks = await probe('disks', () => mountedFilesystems());
        const network = await probe('network', () => networkInterfaces());
        const versions: Record<string, string | null> = {};
        for (const name of wanted) {
          if (name === 'kernel') versions.kernel = os.release();
          else if (name === 'node') versions.node = process.versions.node;
          else if (VERSION_PROBES[name]) {
            const v = await probe(`versions.${name}`, () => versionOf(name, signal));
            if (v !== undefined) versions[name] = v;
          } else errors[`versions.${name}`] = 'no known way to ask this program for its version';
        }
        signal.throwIfAborted();
        const snapshot = {
          collectedAt: new Date().toISOString(),
          window: { since: window.since?.toISOString(), until: window.until?.toISOString() },
          hostname: os.hostname(),
          uptimeSeconds: os.uptime(),
          loadAverage: os.loadavg(),
          os: osDesc,
          board,
          time: clock,
          cpu,
          memory,
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
