/**
 * Status delivery when EVerest's side comes back later than the daemon: found by the broker
 * chaos suite (a status flushed the moment the daemon reconnected, before EVerest's client had
 * reconnected and subscribed again, was lost for good). The daemon must wait for EVerest's
 * heartbeat on the new connection, or for the heartbeat timeout when EVerest sends none.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { startDaemon, tempDir } from '../helpers/daemon.js';
import { EverestSim } from '../helpers/everest.js';
import { startHttpServer } from '../helpers/http-server.js';
import { startMosquitto } from '../helpers/mosquitto.js';

type Log = { log_status: string; request_id: number };

async function logRig(extra: Record<string, unknown> = {}) {
  const broker = await startMosquitto();
  onTestFinished(() => broker.stop());
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const dir = tempDir('chaos-delivery-');
  mkdirSync(path.join(dir, 'logs'));
  writeFileSync(path.join(dir, 'logs', 'a.log'), 'line\n');
  const config = {
    stateDir: path.join(dir, 'state'),
    mqtt: { url: broker.url, reconnectPeriodMs: 100 },
    adapters: { logSources: [{ type: 'files', paths: [path.join(dir, 'logs', '*.log')] }] },
    plugins: [{ name: 'log-upload', options: { stationId: 'CP-1', retryIntervalS: 0 } }],
    ...extra,
  };
  return { broker, http, config };
}

test('broker restart: a status produced during the outage reaches EVerest although its client reconnects after the daemon', async () => {
  const { broker, http, config } = await logRig({ heartbeat: { timeoutMs: 5000 } });
  http.route('/logs/', { delayMs: 600 });
  const daemon = await startDaemon(config);
  // EVerest's client comes back well after the daemon's
  const ev = await EverestSim.connect(broker.url, { mqtt: { reconnectPeriod: 1500 } });
  ev.startHeartbeat(100);
  await daemon.waitForLog(/EVerest heartbeat seen/);
  await ev.request('upload_logs', { location: `${http.url}/logs/`, request_id: 5 });
  await ev.waitForStatus<Log>('log_status', (s) => s.log_status === 'Uploading');
  await http.waitForRequest((r) => r.method === 'PUT');
  await broker.stop();
  // the upload ends while the broker is down
  await daemon.waitForLog(/logs uploaded/);
  const everestBack = new Promise<number>((resolve) => ev.client.once('connect', () => resolve(Date.now())));
  await broker.start();
  await daemon.waitForLog((l) => l.msg === 'connected to MQTT broker' && daemon.logs.filter((x) => x.msg === l.msg).length === 2);
  const seen = await ev.waitForStatus<Log>('log_status', (s) => s.log_status === 'Uploaded', 10_000);
  expect(seen).toEqual({ log_status: 'Uploaded', request_id: 5 });
  // the daemon was back first, so the status really waited for EVerest
  const daemonBack = Date.parse(String(daemon.logs.filter((l) => l.msg === 'connected to MQTT broker')[1]!.time));
  expect(await everestBack).toBeGreaterThan(daemonBack);
  expect(ev.statuses<Log>('log_status')).toEqual([
    { log_status: 'Uploading', request_id: 5 },
    { log_status: 'Uploaded', request_id: 5 },
  ]);
});

test('a daemon that starts before EVerest keeps its restored statuses until EVerest is there', async () => {
  const { broker, config } = await logRig({ heartbeat: { timeoutMs: 5000 } });
  const ev1 = await EverestSim.connect(broker.url);
  ev1.startHeartbeat(100);
  const d1 = await startDaemon({ ...config, heartbeat: { timeoutMs: 300 } });
  await d1.waitForLog(/EVerest heartbeat seen/);
  ev1.stopHeartbeat();
  await d1.waitForLog(/EVerest heartbeat lost/);
  // produced while EVerest is away: not deliverable, persisted at shutdown
  await ev1.request('upload_logs', { location: 'http://127.0.0.1:9/logs/', request_id: 6, retries: 1 });
  await d1.waitForLog((l) => l.msg === 'status' && l.log_status === 'UploadFailure');
  await d1.stop();
  await ev1.close();
  expect(ev1.statuses('log_status')).toEqual([]);

  const d2 = await startDaemon(config);
  await d2.waitForLog(/listening for EVerest requests/);
  // EVerest starts after the daemon is connected
  const ev2 = await EverestSim.connect(broker.url);
  ev2.startHeartbeat(100);
  await ev2.waitForStatus<Log>('log_status', (s) => s.log_status === 'UploadFailure', 10_000);
  expect(ev2.statuses('log_status')).toEqual([
    { log_status: 'Uploading', request_id: 6 },
    { log_status: 'UploadFailure', request_id: 6 },
  ]);
});

test('EVerest without a heartbeat still gets statuses after the heartbeat timeout, and the latest again once a heartbeat appears', async () => {
  const { broker, http, config } = await logRig({ heartbeat: { timeoutMs: 400 } });
  const daemon = await startDaemon(config);
  const ev = await EverestSim.connect(broker.url);
  await ev.request('upload_logs', { location: `${http.url}/logs/`, request_id: 7 });
  await ev.waitForStatus<Log>('log_status', (s) => s.log_status === 'Uploaded', 10_000);
  expect(ev.statuses('log_status')).toEqual([
    { log_status: 'Uploading', request_id: 7 },
    { log_status: 'Uploaded', request_id: 7 },
  ]);
  const mark = ev.messages.length;
  ev.startHeartbeat(100);
  await daemon.waitForLog(/EVerest heartbeat seen/);
  await ev.nextMessage((m) => m.name === 'log_status', 5000, 'the latest status again', mark);
  expect(ev.statuses('log_status').slice(2)).toEqual([{ log_status: 'Uploaded', request_id: 7 }]);
});
