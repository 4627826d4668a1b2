/**
 * Found by the fuzz:
 * - a request far over maxPayloadBytes (16x, not parsed at all) got no reply, so EVerest waited for
 *   its own timeout (550 s by default) although the reply topic was right at the start of the
 *   message. Now the first bytes are searched for the replyTo and the safe reply goes out at once;
 *   a replyTo that is not this module's own still gets nothing.
 * - deeply nested JSON (a 100,000-deep array) was parsed, blocking the event loop for 100-230 ms
 *   per message, and reached plugins when it sat in an extra field. Now anything nested deeper than
 *   any system_API message is answered with the safe reply without being parsed.
 */
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startDaemon } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { classify } from './support.js';

const simulated = { installer: { type: 'simulated' }, power: { type: 'simulated' }, clock: { type: 'simulated' }, logSources: [{ type: 'system-snapshot' }] };

describe('oversized requests', () => {
  it('a request far over maxPayloadBytes gets the safe reply on its own replyTo, and nothing for a foreign one', async () => {
    const broker = await startMosquitto();
    try {
      await startDaemon({ mqtt: { url: broker.url }, maxPayloadBytes: 1024, adapters: simulated });
      const observer = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
      const out: string[] = [];
      observer.on('message', (topic) => {
        const c = classify(topic);
        if (c.kind !== 'inbound' && !(c.kind === 'status' && c.name === 'communication_check')) out.push(topic);
      });
      await observer.subscribeAsync('#');
      const ev = await EverestSim.connect(broker.url);
      const big = 'A'.repeat(1024 * 16 + 100);

      const replyTo = 'everest_api/1/system/system_api/m2e/reply/oversized-1';
      const reply = ev.nextMessage((m) => m.name === 'reply/oversized-1', 5000, 'the safe reply');
      await ev.publishRaw('update_firmware', JSON.stringify({ headers: { replyTo }, payload: { location: big, request_id: 1 } }));
      expect((await reply).value).toBe('Rejected');

      await ev.publishRaw('upload_logs', JSON.stringify({ headers: { replyTo: 'everest_api/1/system/other/m2e/reply/x' }, payload: { location: big } }));
      // the sentinel is answered after the foreign request was handled
      expect(await ev.request('get_boot_reason')).toBeTypeOf('string');
      expect(out.filter((t) => !t.includes('/reply/oversized-1') && !/reply\/[0-9a-f-]{36}$/.test(t))).toEqual([]);
      await observer.endAsync(true);
    } finally {
      await broker.stop();
    }
  });

  it('deeply nested JSON is answered with the safe reply without being parsed or reaching a plugin', async () => {
    const broker = await startMosquitto();
    try {
      const d = await startDaemon({ mqtt: { url: broker.url }, adapters: simulated });
      const ev = await EverestSim.connect(broker.url);
      const deep = `${'['.repeat(30_000)}${']'.repeat(30_000)}`; // under maxPayloadBytes
      const replyTo = 'everest_api/1/system/system_api/m2e/reply/deep-1';
      const reply = ev.nextMessage((m) => m.name === 'reply/deep-1', 5000, 'the safe reply');
      await ev.publishRaw('update_firmware', `{"headers":{"replyTo":"${replyTo}"},"payload":{"location":"http://127.0.0.1:9/fw.bin","request_id":7,"deep":${deep}}}`);
      expect((await reply).value).toBe('Rejected');
      const line = await d.waitForLog((l) => l.msg === 'request' && l.op === 'update_firmware');
      expect(line).toMatchObject({ outcome: 'rejected', reason: expect.stringContaining('nested deeper') });
      // a reset command nested the same way is dropped too, and the daemon still answers
      await ev.publishRaw('reset', `{"type":"Soft","deep":${deep}}`);
      await d.waitForLog((l) => l.msg === 'command' && l.op === 'reset' && l.outcome === 'rejected');
      expect(await ev.request('is_reset_allowed', 'Soft')).toBe(true);
    } finally {
      await broker.stop();
    }
  });
});
