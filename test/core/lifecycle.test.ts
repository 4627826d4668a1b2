/**
 * The daemon's life beside EVerest: communication check, broker and EVerest coming and going,
 * graceful shutdown, configuration errors, the embedded default.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { EverestSim } from '../helpers/everest.js';
import { REPO_ROOT, spawnDaemon, startDaemon, tempDir } from '../helpers/daemon.js';

const PLUGIN = path.join(REPO_ROOT, 'test/assets/wire-plugin.ts');
let broker: Broker;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

const wire = (url: string, extra: Record<string, unknown> = {}) => ({
  mqtt: { url },
  plugins: [{ name: 'wire', module: PLUGIN }],
  ...extra,
});

describe('communication check', () => {
  test('true right after connecting, then at the configured interval', async () => {
    const ev = await EverestSim.connect(broker.url);
    const t0 = Date.now();
    await startDaemon(wire(broker.url, { communicationCheck: { intervalMs: 300 } }));
    const first = await ev.nextMessage((m) => m.name === 'communication_check', 5000);
    expect(first.raw.toString()).toBe('true');
    expect(first.at - t0).toBeLessThan(3000);
    await ev.nextMessage((m) => m.name === 'communication_check', 5000, 'second', ev.messages.indexOf(first) + 1);
    await ev.nextMessage((m) => m.name === 'communication_check', 5000, 'third', ev.messages.length);
    const checks = ev.messages.filter((m) => m.name === 'communication_check');
    const gaps = checks.slice(1).map((m, i) => m.at - checks[i]!.at);
    // well inside EVerest's default 5 s timeout, and not a flood
    for (const gap of gaps) {
      expect(gap).toBeGreaterThan(150);
      expect(gap).toBeLessThan(2000);
    }
  });

  test('graceful shutdown (SIGTERM): false is published, the process exits 0 within a few seconds', async () => {
    const ev = await EverestSim.connect(broker.url);
    const d = await spawnDaemon(wire(broker.url));
    await ev.waitForStatus('communication_check', (v) => v === true, 20_000);
    expect(await ev.request('get_boot_reason', undefined, { timeoutMs: 10_000 })).toBe('PowerUp');
    const t0 = Date.now();
    d.kill('SIGTERM');
    const exit = await d.exited;
    expect(exit.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    // the daemon published false before it exited; the broker may forward it after the exit is seen here
    await ev.nextMessage((m) => m.name === 'communication_check' && m.raw.toString() === 'false', 5000, 'communication_check false', 0);
    const checks = ev.messages.filter((m) => m.name === 'communication_check').map((m) => m.raw.toString());
    expect(checks.at(-1)).toBe('false');
  });
});

describe('delivery to EVerest', () => {
  test('broker restart mid-run: the daemon reconnects, answers again, and statuses from the outage arrive', async () => {
    const own = await startMosquitto();
    try {
      const d = await startDaemon(wire(own.url));
      const ev = await EverestSim.connect(own.url);
      expect(await ev.request('get_boot_reason')).toBe('PowerUp');
      await own.stop();
      await own.start();
      // the daemon reconnects by itself
      await d.waitForLog((l) => l.msg === 'connected to MQTT broker' && d.logs.filter((x) => x.msg === 'connected to MQTT broker').length >= 2, 15_000);
      const ev2 = await EverestSim.connect(own.url);
      expect(await ev2.request('upload_logs', { location: 'http://x/', request_id: 5 })).toEqual({ upload_logs_status: 'Accepted', file_name: 'wire.tar.gz' });
      expect(ev2.statuses('log_status').length).toBeGreaterThanOrEqual(0);
      await ev2.waitForStatus('log_status', (v: { log_status: string }) => v.log_status === 'Uploaded');
      await ev.close();
    } finally {
      await own.stop();
    }
  });

  test('statuses produced while EVerest is lost are sent in order once its heartbeat is back', async () => {
    const d = await startDaemon(wire(broker.url, { heartbeat: { timeoutMs: 400 } }));
    const ev = await EverestSim.connect(broker.url);
    ev.startHeartbeat(100, 1000n);
    await d.waitForLog(/EVerest heartbeat seen/);
    ev.stopHeartbeat();
    await d.waitForLog(/EVerest heartbeat lost/);
    // a request still arrives (EVerest is not really gone), but statuses wait for the heartbeat
    const before = ev.statuses('log_status').length;
    await ev.request('upload_logs', { location: 'http://x/', request_id: 9 });
    expect(ev.statuses('log_status').length).toBe(before);
    ev.startHeartbeat(100, 1010n);
    await ev.waitForStatus('log_status', (v: { log_status: string }) => v.log_status === 'Uploaded');
    expect(ev.statuses('log_status')).toEqual([
      { log_status: 'Uploading', request_id: 9 },
      { log_status: 'Uploaded', request_id: 9 },
    ]);
  });

  test('EVerest restart (heartbeat back to 0): the latest status of a running operation is sent again', async () => {
    const d = await startDaemon(wire(broker.url, { heartbeat: { timeoutMs: 2000 } }));
    const ev = await EverestSim.connect(broker.url);
    ev.startHeartbeat(100, 500n);
    await d.waitForLog(/EVerest heartbeat seen/);
    await ev.request('update_firmware', { location: 'http://x/fw', request_id: 42 });
    await ev.request('upload_logs', { location: 'http://x/', request_id: 8 });
    await ev.waitForStatus('log_status', (v: { log_status: string }) => v.log_status === 'Uploaded');
    await ev.waitForStatus('firmware_update_status');
    const firmwareBefore = ev.statuses('firmware_update_status').length;
    const mark = ev.messages.length;
    ev.startHeartbeat(100, 0n);
    await d.waitForLog(/EVerest restarted/);
    await ev.nextMessage((m) => m.name === 'firmware_update_status', 5000, 're-sent status', mark);
    const fw = ev.statuses('firmware_update_status');
    expect(fw.length).toBe(firmwareBefore + 1);
    expect(fw.at(-1)).toEqual({ firmware_update_status: 'Downloading', request_id: 42 });
    // the finished log upload is not repeated
    expect(ev.statuses('log_status').filter((s) => (s as { log_status: string }).log_status === 'Uploaded')).toHaveLength(1);
    expect(d.daemon.everest.restarts).toBe(1);
  });

  test('statuses that could not be delivered before a shutdown are sent by the next run', async () => {
    const own = await startMosquitto();
    try {
      const stateDir = tempDir();
      const d1 = await startDaemon(wire(own.url, { stateDir, heartbeat: { timeoutMs: 300 } }));
      const ev = await EverestSim.connect(own.url);
      ev.startHeartbeat(100, 1n);
      await d1.waitForLog(/EVerest heartbeat seen/);
      ev.stopHeartbeat();
      await d1.waitForLog(/EVerest heartbeat lost/);
      await ev.request('upload_logs', { location: 'http://x/', request_id: 77 });
      await d1.stop();
      expect(ev.statuses('log_status')).toEqual([]);
      const d2 = await startDaemon(wire(own.url, { stateDir }));
      await d2.waitForLog(/restored undelivered statuses/);
      await ev.waitForStatus('log_status', (v: { log_status: string }) => v.log_status === 'Uploaded');
      expect(ev.statuses('log_status')).toEqual([
        { log_status: 'Uploading', request_id: 77 },
        { log_status: 'Uploaded', request_id: 77 },
      ]);
    } finally {
      await own.stop();
    }
  });
});

describe('delivery waits until EVerest listens', () => {
  test('an EVerest whose first heartbeat precedes its subscription still gets the statuses it missed', async () => {
    const d = await startDaemon(wire(broker.url, { heartbeat: { timeoutMs: 5000 } }));
    // a status produced before EVerest is heard: kept
    const requester = await EverestSim.connect(broker.url);
    await requester.request('upload_logs', { location: 'http://x/', request_id: 31 }, { noReplyTo: true });
    await d.waitForLog((l) => l.msg === 'status' && l.log_status === 'Uploaded');
    // EVerest coming back the way a reconnecting client can: a heartbeat queued while offline goes
    // out before its subscriptions are restored
    const everest = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const seen: string[] = [];
    everest.on('message', (_t, p) => seen.push(p.toString()));
    await everest.publishAsync('everest_api/1/system/system_api/e2m/heartbeat', '7');
    await d.waitForLog(/EVerest heartbeat seen/);
    await everest.subscribeAsync('everest_api/1/system/system_api/m2e/log_status');
    await everest.publishAsync('everest_api/1/system/system_api/e2m/heartbeat', '8');
    await vi.waitFor(() => expect(seen.map((x) => JSON.parse(x).log_status)).toEqual(['Uploading', 'Uploaded']), { timeout: 5000 });
    await everest.endAsync(true);
  });
});

describe('configuration errors stop the start with the culprit named', () => {
  const run = async (config: Record<string, unknown>, command = 'run') => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ stateDir: path.join(dir, 'state'), ...config }));
    const { execa } = await import('execa');
    return execa(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'core/cli.ts'), command, '--config', file], { reject: false, cwd: REPO_ROOT });
  };

  test('schema errors name every path', async () => {
    const r = await run({ mqtt: { url: 5, externalPrefx: 'x' }, communicationCheck: { intervalMs: 'fast' }, log: { level: 'loud' } }, 'check-config');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('/mqtt/url: must be string');
    expect(r.stderr).toContain('/mqtt: unknown key "externalPrefx"');
    expect(r.stderr).toContain('/communicationCheck/intervalMs: must be integer');
    expect(r.stderr).toMatch(/\/log\/level: must be one of "trace", "debug"/);
  });

  test('unknown plugin, operation claimed twice, missing adapter, unknown adapter', async () => {
    const unknown = await run({ plugins: ['no-such-plugin'] }, 'check-config');
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/unknown plugin "no-such-plugin" at \/plugins\/0; built-in plugins are: /);

    const twice = await run({ plugins: [{ name: 'a', module: PLUGIN }, { name: 'b', module: PLUGIN }] });
    expect(twice.exitCode).toBe(2);
    expect(twice.stderr).toMatch(/operation "update_firmware" is claimed by both plugin "a" .* and plugin "b"/);

    const missing = await run({ plugins: ['firmware-update'], adapters: {} });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/plugin "firmware-update" needs an adapter bound at \/adapters\/installer/);

    const badType = await run({ plugins: ['firmware-update'], adapters: { installer: { type: 'floppy' }, power: { type: 'floppy' } } }, 'check-config');
    expect(badType.exitCode).toBe(2);
    expect(badType.stderr).toMatch(/\/adapters\/(installer|power)\/type: unknown (installer|power) adapter "floppy"; built-in ones are: /);
  });

  test('malformed JSON and a missing file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    writeFileSync(file, '{ "moduleId": ');
    const { execa } = await import('execa');
    const bad = await execa(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'core/cli.ts'), 'run', '--config', file], { reject: false });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/is not valid JSON/);
    const none = await execa(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'core/cli.ts'), 'run', '--config', path.join(dir, 'nope.json')], { reject: false });
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/cannot read config/);
  });
});

describe('the embedded default', () => {
  test('plugins.config.json runs with no external broker and answers the demo EVerest', async () => {
    const dir = tempDir();
    const cfg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'plugins.config.json'), 'utf8')) as Record<string, any>;
    cfg.stateDir = path.join(dir, 'state');
    cfg.mqtt.embeddedBroker.port = 0;
    cfg.log = { level: 'info' };
    delete cfg.$schema;
    copyFileSync(path.join(REPO_ROOT, 'plugins.config.json'), path.join(dir, 'original.json'));
    const d = await spawnDaemon(cfg, { dir });
    await d.waitForLog(/embedded MQTT broker listening/, 20_000);
    await d.waitForLog(/demo round done/, 30_000);
    const answers = d
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; request?: string; reply?: unknown })
      .filter((l) => l.msg?.startsWith('demo EVerest:') && l.request);
    // a real plugin answered each request, not the safe default
    expect(Object.fromEntries(answers.map((a) => [a.request, a.reply]))).toEqual({
      get_boot_reason: 'PowerUp',
      set_system_time: true,
      is_reset_allowed: true,
    });
    d.kill('SIGINT');
    expect((await d.exited).code).toBe(0);
  });
});

describe('shutdown without a broker', () => {
  test('the daemon stops promptly when the broker has gone away', async () => {
    const own = await startMosquitto();
    const d = await startDaemon(wire(own.url));
    await own.stop();
    await d.waitForLog(/MQTT connection lost/);
    const t0 = Date.now();
    await d.stop();
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
