/**
 * `probe watch` and the communication check as EVerest evaluates it, against the real daemon
 * over a real mosquitto; EVerest's traffic played by EverestSim.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOST_SUB_TYPE } from '../../core/probe/index.js';
import { spawnDaemon, startDaemon } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { daemonOn, moduleId, probe, until, type ProbeEvent } from './harness.js';

let broker: Broker;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

describe('probe watch', () => {
  it('shows requests, replies, statuses and zero-byte payloads; heartbeat and communication_check only as summaries', async () => {
    const d = await daemonOn(broker.url);
    const flags = ['--url', broker.url, '--module-id', d.moduleId, '--summary-s', '0.5'];
    const human = probe(['watch', ...flags]);
    const json = probe(['watch', ...flags, '--json']);
    await until(() => json.events().some((e) => e.event === 'watching') && human.out().includes('watching'), 10_000, 'both watches subscribed');

    const ev = await EverestSim.connect(broker.url, { moduleId: d.moduleId });
    ev.startHeartbeat(50, 1000n);
    const reason = await ev.request('get_boot_reason');
    await ev.command('allow_firmware_installation');
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(true);
    // a status with a shape EVerest would drop
    await ev.client.publishAsync(`${ev.topics.base}m2e/log_status`, '{"bogus":1}');
    await until(() => json.events().filter((e) => e.event === 'summary' && (e.heartbeat as { count: number }).count >= 10).length > 0, 10_000, 'a summary with 10 heartbeats', json.out);
    human.abort();
    json.abort();
    expect(await human.done).toBe(0);
    expect(await json.done).toBe(0);

    const out = human.out();
    expect(out).toContain('→ e2m/get_boot_reason (no payload)');
    expect(out).toMatch(new RegExp(`← reply to get_boot_reason ${String(reason)} \\(\\d+ ms\\)`));
    expect(out).toContain('→ e2m/is_reset_allowed "Soft"');
    expect(out).toMatch(/← reply to is_reset_allowed true \(\d+ ms\)/);
    expect(out).toContain('→ e2m/allow_firmware_installation (zero bytes)');
    expect(out).toMatch(/← m2e\/log_status \{"bogus":1\} invalid .*EVerest drops it/);
    expect(out).toMatch(/heartbeat ×\d+ \(1000\.\.\d+\) · communication_check true ×\d+ · check ok/);
    // one line when the heartbeat is first seen, never one per beat
    expect(out.split('\n').filter((l) => l.includes('heartbeat') && !l.includes('·'))).toEqual([expect.stringContaining('e2m/heartbeat seen, counter 1000')]);
    expect(out).not.toContain('← m2e/communication_check');

    const events = json.events();
    const messages = events.filter((e) => e.event === 'message');
    expect(messages.map((m) => `${String(m.dir)}/${String(m.name).replace(/^reply\/.*/, 'reply')}`)).toEqual([
      'e2m/get_boot_reason', 'm2e/reply', 'e2m/allow_firmware_installation', 'e2m/is_reset_allowed', 'm2e/reply', 'm2e/log_status',
    ]);
    expect(messages[1]).toMatchObject({ op: 'get_boot_reason', payload: reason });
    expect(messages[2]).toMatchObject({ bytes: 0, payload: null });
    expect(messages[5]).toMatchObject({ invalid: expect.any(String) });
    const final = events.at(-2)!;
    expect(final).toMatchObject({ event: 'summary', final: true, comm_check_state: 'ok' });
    expect(events.at(-1)).toMatchObject({ event: 'end', ok: true, exit_code: 0 });
  });

  it('reports the heartbeat going back as an EVerest restart and the communication fault when the daemon dies, cleared when it is back', async () => {
    const id = moduleId();
    const config = { moduleId: id, mqtt: { url: broker.url }, adapters: { power: { type: 'simulated' } }, plugins: ['boot-reason'] };
    const child = await spawnDaemon(config);
    await child.waitForLog(/listening for EVerest requests/);
    const w = probe(['watch', '--url', broker.url, '--module-id', id, '--comm-timeout-s', '1', '--json']);
    const has = (p: (e: ProbeEvent) => boolean) => () => w.events().some(p);
    await until(has((e) => e.event === 'comm_check' && e.state === 'ok'), 15_000, 'the first communication_check', w.out);

    const ev = await EverestSim.connect(broker.url, { moduleId: id });
    ev.startHeartbeat(100, 50n);
    await until(has((e) => e.event === 'heartbeat' && e.action === 'seen'), 10_000, 'heartbeat seen');
    ev.startHeartbeat(100, 0n);
    await until(has((e) => e.event === 'heartbeat' && e.action === 'restart' && e.value === '0'), 10_000, 'heartbeat restart');

    child.kill('SIGKILL'); // no communication_check false: EVerest's timeout has to notice
    await child.exited;
    await until(has((e) => e.event === 'fault' && e.action === 'raised' && e.sub_type === LOST_SUB_TYPE), 10_000, 'the communication fault', w.out);

    await startDaemon(config);
    await until(has((e) => e.event === 'fault' && e.action === 'cleared' && e.sub_type === LOST_SUB_TYPE), 10_000, 'the fault cleared', w.out);
    w.abort();
    expect(await w.done).toBe(0);
    const faults = w.events().filter((e) => e.event === 'fault').map((e) => `${String(e.action)} ${String(e.sub_type)}`);
    expect(faults).toEqual([
      'raised Initial communication check',
      'cleared Initial communication check',
      `raised ${LOST_SUB_TYPE}`,
      `cleared ${LOST_SUB_TYPE}`,
    ]);
  });

  it('in human output the fault reads as EVerest would raise it', async () => {
    const id = moduleId();
    // nobody sends communication_check: after the initial fault, nothing else is raised
    const w = probe(['watch', '--url', broker.url, '--module-id', id, '--comm-timeout-s', '0.3', '--duration-s', '1']);
    expect(await w.done).toBe(0);
    expect(w.out()).toContain('EVerest holds system/CommunicationFault "Initial communication check" until the first m2e/communication_check');
    expect(w.out()).not.toContain(LOST_SUB_TYPE);
    expect(w.out()).toMatch(/no heartbeat · no communication_check · fault "Initial communication check"/);
  });
});
