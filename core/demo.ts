/**
 * The embedded default's demo: plays EVerest on the embedded broker (heartbeat every second,
 * then one round of requests) and logs every answer, so a newcomer sees the daemon work
 * without EVerest or a broker installed.
 */
import type { Logger } from './api.js';
import { EverestSide } from './everestSide.js';

export interface Demo {
  stop(): Promise<void>;
}

export async function startDemo(url: string, moduleId: string, prefix: string, log: Logger): Promise<Demo> {
  const side = await EverestSide.connect(url, { moduleId, prefix });
  const demoLog = log.child({ component: 'demo-everest' });
  side.on('message', (m) => {
    if (m.name.startsWith('reply/') || m.name === 'communication_check') return;
    demoLog.info({ topic: `m2e/${m.name}`, value: m.value }, 'demo EVerest received a status');
  });
  side.startHeartbeat(1000);
  let stopped = false;
  const ask = async (op: string, payload?: unknown) => {
    if (stopped) return;
    try {
      const reply = await side.request(op, payload, { timeoutMs: 10_000 });
      demoLog.info({ request: op, payload, reply }, `demo EVerest: ${op} answered ${JSON.stringify(reply)}`);
    } catch (err) {
      demoLog.warn({ request: op, error: (err as Error).message }, 'demo EVerest: no answer');
    }
  };
  const round = (async () => {
    await side.nextMessage((m) => m.name === 'communication_check', 10_000, 'communication check').catch(() => undefined);
    await ask('get_boot_reason');
    await ask('set_system_time', new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'));
    await ask('is_reset_allowed', 'NotSpecified');
    demoLog.info('demo round done; the daemon keeps running (Ctrl-C stops it). Send your own requests with mosquitto_pub or `everest-system probe`.');
  })();
  return {
    async stop() {
      stopped = true;
      await round.catch(() => undefined);
      await side.close();
    },
  };
}
