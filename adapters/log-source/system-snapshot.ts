/**
 * system-snapshot log source: one JSON file describing the board at collection time (OS, kernel,
 * uptime, load, memory, disks, network interfaces, program versions), through `systeminformation`.
 * Each probe has a time limit; a probe that fails or times out is reported in the file.
 */
import * as os from 'node:os';
import { defineAdapter, type LogSink, type LogSource, type LogWindow } from '../../core/api.js';

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
        const network = await probe('network', () => si.networkInterfaces());
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
