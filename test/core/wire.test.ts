/**
 * The daemon on the wire, as EVerest sees it: a real mosquitto, EVerest played by EverestSim,
 * a third-party-style plugin loaded by path.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { EverestSim } from '../helpers/everest.js';
import { startDaemon } from '../helpers/daemon.js';

const PLUGIN = './test/assets/wire-plugin.ts';
let broker: Broker;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

function wireConfig(extra: Record<string, unknown> = {}, options: Record<string, unknown> = {}) {
  return {
    mqtt: { url: broker.url, ...((extra.mqtt as object) ?? {}) },
    plugins: [{ name: 'wire', module: PLUGIN, options }],
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'mqtt')),
  };
}

function commands(stateDir: string): Array<{ op: string; payload: unknown }> {
  const file = path.join(stateDir, 'plugins', 'wire', 'commands.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Array<{ op: string; payload: unknown }>) : [];
}

describe('requests and replies', () => {
  test('every request type is answered with the bare JSON value on replyTo', async () => {
    await startDaemon(wireConfig());
    const ev = await EverestSim.connect(broker.url);
    expect(await ev.request('update_firmware', { location: 'https://example.invalid/fw.bin', request_id: 7 })).toBe('Accepted');
    expect(await ev.request('upload_logs', { location: 'https://example.invalid/up/', request_id: 3 })).toEqual({ upload_logs_status: 'Accepted', file_name: 'wire.tar.gz' });
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(true);
    expect(await ev.request('is_reset_allowed', 'Hard')).toBe(false);
    expect(await ev.request('set_system_time', '2026-11-25T10:00:00Z')).toBe(true);
    expect(await ev.request('get_boot_reason')).toBe('PowerUp');
    const replies = ev.messages.filter((m) => m.name.startsWith('reply/'));
    expect(replies.map((m) => m.raw.toString())).toEqual(['"Accepted"', '{"upload_logs_status":"Accepted","file_name":"wire.tar.gz"}', 'true', 'false', 'true', '"PowerUp"']);
  });

  test('commands: zero-byte allow_firmware_installation and bare reset reach the plugin', async () => {
    const d = await startDaemon(wireConfig());
    const ev = await EverestSim.connect(broker.url);
    await ev.request('get_boot_reason'); // subscribed and running
    await ev.command('allow_firmware_installation');
    await ev.command('reset', { type: 'Hard', scheduled: true });
    await vi.waitFor(() => expect(commands(d.stateDir).map((c) => c.op)).toEqual(['allow_firmware_installation', 'reset']));
    expect(commands(d.stateDir)[1]!.payload).toEqual({ type: 'Hard', scheduled: true });
  });

  test('without replyTo the request is executed but nothing is replied', async () => {
    const d = await startDaemon(wireConfig());
    const ev = await EverestSim.connect(broker.url);
    await ev.request('get_boot_reason');
    await ev.request('set_system_time', '2026-11-25T11:00:00Z', { noReplyTo: true });
    await vi.waitFor(() => expect(commands(d.stateDir).map((c) => c.op)).toContain('set_system_time'));
    await d.waitForLog((l) => l.msg === 'request' && l.op === 'set_system_time');
    // the reply of the first request is the only message on any reply topic
    expect(ev.messages.filter((m) => m.name.startsWith('reply/'))).toHaveLength(1);
  });

  test('external prefix: every wire topic is prefixed, replyTo inside the request is not', async () => {
    await startDaemon(wireConfig({ mqtt: { externalPrefix: 'site7/' } }));
    const ev = await EverestSim.connect(broker.url, { prefix: 'site7/' });
    const reply = ev.request('get_boot_reason');
    expect(await reply).toBe('PowerUp');
    const replyMsg = ev.messages.find((m) => m.name.startsWith('reply/'))!;
    expect(replyMsg.topic.startsWith('site7/everest_api/1/system/system_api/m2e/reply/')).toBe(true);
    // an unprefixed EVerest gets nothing
    const plain = await EverestSim.connect(broker.url);
    await expect(plain.request('get_boot_reason', undefined, { timeoutMs: 800 })).rejects.toThrow(/no reply/);
    await ev.waitForStatus('communication_check', (v) => v === true);
  });

  test('requests for other module ids are ignored', async () => {
    await startDaemon(wireConfig({ moduleId: 'system_a' }));
    const other = await EverestSim.connect(broker.url, { moduleId: 'system_b' });
    await expect(other.request('get_boot_reason', undefined, { timeoutMs: 800 })).rejects.toThrow(/no reply/);
    const mine = await EverestSim.connect(broker.url, { moduleId: 'system_a' });
    expect(await mine.request('get_boot_reason')).toBe('PowerUp');
  });

  test('an operation that no running plugin handles gets the safe default', async () => {
    const d = await startDaemon({ mqtt: { url: broker.url }, plugins: [] });
    const ev = await EverestSim.connect(broker.url);
    expect(await ev.request('update_firmware', { location: 'http://x/y', request_id: 1 })).toBe('Rejected');
    expect(await ev.request('upload_logs', { location: 'http://x/y' })).toEqual({ upload_logs_status: 'Rejected' });
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(false);
    expect(await ev.request('set_system_time', '2026-11-25T10:00:00Z')).toBe(false);
    expect(await ev.request('get_boot_reason')).toBe('Unknown');
    // request lines are written in batches, shortly after the replies
    await vi.waitFor(() => expect(d.logs.filter((l) => l.outcome === 'unhandled')).toHaveLength(5));
  });
});

describe('bad input gets a log line and the safe reply', () => {
  const reply = (op: string) => `everest_api/1/system/system_api/m2e/reply/bad-${op}`;
  const cases: Array<[string, string, string, unknown]> = [
    ['malformed JSON', 'update_firmware', `{"headers":{"replyTo":"${reply('update_firmware')}"},"payload":{"location":`, 'Rejected'],
    ['missing required field', 'update_firmware', JSON.stringify({ headers: { replyTo: reply('update_firmware') }, payload: { location: 'http://x' } }), 'Rejected'],
    ['wrong type', 'upload_logs', JSON.stringify({ headers: { replyTo: reply('upload_logs') }, payload: { location: 5 } }), { upload_logs_status: 'Rejected' }],
    ['bad timestamp', 'upload_logs', JSON.stringify({ headers: { replyTo: reply('upload_logs') }, payload: { location: 'http://x/', oldest_timestamp: 'yesterday' } }), { upload_logs_status: 'Rejected' }],
    ['unknown enum', 'is_reset_allowed', JSON.stringify({ headers: { replyTo: reply('is_reset_allowed') }, payload: 'Explode' }), false],
    ['bad RFC 3339 time', 'set_system_time', JSON.stringify({ headers: { replyTo: reply('set_system_time') }, payload: '2026-13-45T99:00:00Z' }), false],
    ['non-object envelope', 'get_boot_reason', `[1,2,3]`, undefined],
    ['huge payload', 'set_system_time', JSON.stringify({ headers: { replyTo: reply('set_system_time') }, payload: 'x'.repeat(200_000) }), false],
    ['deep nesting', 'update_firmware', `{"headers":{"replyTo":"${reply('update_firmware')}"},"payload":${'['.repeat(5000)}${']'.repeat(5000)}}`, 'Rejected'],
  ];

  test.each(cases)('%s on %s', async (_what, op, raw, expected) => {
    const d = await startDaemon(wireConfig());
    const ev = await EverestSim.connect(broker.url);
    await ev.request('get_boot_reason');
    await ev.client.subscribeAsync(reply(op));
    await ev.publishRaw(op, raw);
    if (expected === undefined) {
      await d.waitForLog((l) => l.msg === 'request' && l.outcome === 'rejected');
    } else {
      const m = await ev.nextMessage((x) => x.name === `reply/bad-${op}`, 5000);
      expect(m.value).toEqual(expected);
    }
    const line = await d.waitForLog((l) => l.msg === 'request' && l.outcome === 'rejected');
    expect(line.topic).toBe(`everest_api/1/system/system_api/e2m/${op}`);
    expect(String(line.reason)).not.toBe('');
    // the plugin never saw it, and the daemon still answers
    expect(commands(d.stateDir).filter((c) => c.op === op)).toHaveLength(0);
    expect(await ev.request('get_boot_reason')).toBe('PowerUp');
  });

  test('replyTo pointing at another module, a wildcard or outside the API gets no reply at all', async () => {
    const d = await startDaemon(wireConfig());
    const spy = await EverestSim.connect(broker.url);
    await spy.client.subscribeAsync('#');
    const seen: string[] = [];
    spy.client.on('message', (t) => seen.push(t));
    for (const replyTo of ['everest_api/1/system/other/m2e/reply/x', 'everest_api/1/system/system_api/m2e/reply/#', 'everest_api/1/system/system_api/e2m/reset', 'charger/cmd']) {
      await spy.publishRaw('get_boot_reason', JSON.stringify({ headers: { replyTo } }));
    }
    await vi.waitFor(() => expect(d.logs.filter((l) => l.msg === 'request' && l.outcome === 'rejected')).toHaveLength(4));
    expect(seen.filter((t) => !t.includes('/e2m/') && !t.endsWith('communication_check'))).toEqual([]);
  });

  test('an invalid reset command is logged and ignored', async () => {
    const d = await startDaemon(wireConfig());
    const ev = await EverestSim.connect(broker.url);
    await ev.request('get_boot_reason');
    await ev.publishRaw('reset', '{"type":"Sideways"}');
    await ev.publishRaw('reset', 'not json');
    await vi.waitFor(() => expect(d.logs.filter((l) => l.msg === 'command' && l.outcome === 'rejected')).toHaveLength(2));
    expect(commands(d.stateDir)).toEqual([]);
  });

  test('heartbeats that are not u64 integers are ignored without harm', async () => {
    const d = await startDaemon(wireConfig());
    const ev = await EverestSim.connect(broker.url);
    for (const bad of ['-1', '1.5', '"7"', '18446744073709551616', '{}', '']) await ev.publishRaw('heartbeat', bad);
    await vi.waitFor(() => expect(d.logs.filter((l) => /not a u64/.test(String(l.msg)))).toHaveLength(6));
    expect(d.daemon.everest.state).toBe('unknown');
    expect(await ev.request('get_boot_reason')).toBe('PowerUp');
  });
});

describe('handlers that fail', () => {
  test('a throwing handler gets the safe reply; a hanging one times out without blocking other topics', async () => {
    const d = await startDaemon(wireConfig({ requestTimeoutMs: 700 }, { behaviour: { set_system_time: 'throw', get_boot_reason: 'hang', is_reset_allowed: 'invalid' } }));
    const ev = await EverestSim.connect(broker.url);
    const hanging = ev.request('get_boot_reason', undefined, { timeoutMs: 5000 });
    expect(await ev.request('set_system_time', '2026-11-25T10:00:00Z')).toBe(false);
    expect(await ev.request('upload_logs', { location: 'http://x/' })).toEqual({ upload_logs_status: 'Accepted', file_name: 'wire.tar.gz' });
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(false);
    expect(await hanging).toBe('Unknown');
    await d.waitForLog((l) => l.outcome === 'timeout' && l.op === 'get_boot_reason');
    await d.waitForLog((l) => l.outcome === 'error' && l.op === 'set_system_time');
    await d.waitForLog((l) => l.outcome === 'error' && l.op === 'is_reset_allowed' && /invalid/.test(String(l.reason)));
  });

  test('a reply that cannot even be serialised gets the safe reply and a log line, and the daemon stays up', async () => {
    const d = await startDaemon(wireConfig({}, { behaviour: { get_boot_reason: 'unserialisable' } }));
    const ev = await EverestSim.connect(broker.url);
    expect(await ev.request('get_boot_reason')).toBe('Unknown');
    const line = await d.waitForLog((l) => l.msg === 'request' && l.op === 'get_boot_reason');
    expect(line).toMatchObject({ outcome: 'error', reason: expect.stringContaining('handler reply is invalid') });
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(true);
  });

  test('a synchronous handler is answered at once, and one that throws before returning gets the safe reply', async () => {
    const now = await startDaemon(wireConfig({}, { behaviour: { is_reset_allowed: 'answer-now' } }));
    const ev = await EverestSim.connect(broker.url);
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(true);
    expect(await ev.request('is_reset_allowed', 'Hard')).toBe(false);
    await now.stop();
    const throwing = await startDaemon(wireConfig({}, { behaviour: { is_reset_allowed: 'throw-now' } }));
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(false);
    await throwing.waitForLog((l) => l.msg === 'request' && l.outcome === 'error' && /synchronously/.test(String(l.reason)));
    // the daemon goes on answering
    expect(await ev.request('get_boot_reason')).toBe('PowerUp');
  });

  test('a handler that committed before the timeout gets its own answer sent, even well past the timeout', async () => {
    // answers 1.5 s after committing: three times requestTimeoutMs (the safe reply would be untrue)
    const d = await startDaemon(wireConfig({ requestTimeoutMs: 500 }, { behaviour: { update_firmware: 'commit-then-slow' } }));
    const ev = await EverestSim.connect(broker.url);
    const t0 = Date.now();
    expect(await ev.request('update_firmware', { location: 'http://x/fw.bin', request_id: 5 }, { timeoutMs: 5000 })).toBe('Accepted');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(commands(d.stateDir)).toContainEqual({ op: 'commit', payload: true });
    await d.waitForLog(/committed to an answer it has not given yet/);
    expect(d.logs.some((l) => l.msg === 'request' && l.outcome === 'timeout')).toBe(false);
  });

  test('a committed handler that never answers gets the safe reply after requestTimeoutMs plus committedTimeoutMs', async () => {
    const d = await startDaemon(wireConfig({ requestTimeoutMs: 500, committedTimeoutMs: 500 }, { behaviour: { update_firmware: 'commit-then-hang' } }));
    const ev = await EverestSim.connect(broker.url);
    const t0 = Date.now();
    expect(await ev.request('update_firmware', { location: 'http://x/fw.bin', request_id: 6 }, { timeoutMs: 5000 })).toBe('Rejected');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    await d.waitForLog((l) => l.msg === 'request' && l.outcome === 'timeout' && l.op === 'update_firmware' && /no answer within 1000 ms/.test(String(l.reason)));
  });

  test('once the safe reply is sent, a handler that wants to commit is told not to, and sees the abort', async () => {
    const d = await startDaemon(wireConfig({ requestTimeoutMs: 1000 }, { behaviour: { update_firmware: 'slow-then-commit' } }));
    const ev = await EverestSim.connect(broker.url);
    expect(await ev.request('update_firmware', { location: 'http://x/fw.bin', request_id: 7 }, { timeoutMs: 5000 })).toBe('Rejected');
    await vi.waitFor(() => expect(commands(d.stateDir)).toContainEqual({ op: 'commit', payload: { committed: false, aborted: true } }), { timeout: 5000 });
  });

  test('a plugin whose start fails is dropped; its operations get the safe reply', async () => {
    const d = await startDaemon(wireConfig({}, { startFails: true }));
    const ev = await EverestSim.connect(broker.url);
    expect(await ev.request('get_boot_reason')).toBe('Unknown');
    expect(d.logs.some((l) => /failed to start plugin "wire"/.test(String(l.msg)))).toBe(true);
  });

  test('an invalid status is dropped before it reaches EVerest', async () => {
    const d = await startDaemon(wireConfig());
    const ev = await EverestSim.connect(broker.url);
    await ev.request('get_boot_reason');
    await ev.command('reset', { type: 'Soft', scheduled: false });
    await d.waitForLog(/dropping invalid status/);
    expect(ev.statuses('firmware_update_status')).toEqual([]);
  });
});
