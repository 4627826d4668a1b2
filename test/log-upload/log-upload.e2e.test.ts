/**
 * upload_logs end to end: real mosquitto, the real kernel with the log-upload plugin and real log
 * sources (journal files made with systemd-journal-remote, log files with chosen mtimes), EVerest
 * played by EverestSim, and a real HTTP (or FTP) server on loopback that stores what it receives.
 * Every archive is extracted with the system's tar and its content checked.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { EverestSim, type EverestSide } from '../helpers/everest.js';
import { startDaemon, spawnDaemon, tempDir, type RunningDaemon } from '../helpers/daemon.js';
import { startHttpServer, type TestHttpServer } from '../helpers/http-server.js';
import { startFtpServer } from '../helpers/ftp-server.js';
import { at, extractArchive, makeJournal } from './fixtures.js';

type LogStatus = { log_status: string; request_id: number };
type Reply = { upload_logs_status: string; file_name?: string };

let broker: Broker;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

interface Rig {
  http: TestHttpServer;
  dir: string;
  daemon: RunningDaemon;
  ev: EverestSide;
  request(payload: Record<string, unknown>): Promise<Reply>;
  names(requestId: number): string[];
  waitFinal(requestId: number, timeoutMs?: number): Promise<LogStatus>;
  /** wait until `count` statuses for the id have arrived */
  waitCount(requestId: number, count: number, timeoutMs?: number): Promise<void>;
  workDir(): string;
  /** extract the n-th upload the HTTP server received */
  extract(n?: number): Promise<Map<string, string>>;
}

const FINAL = ['Uploaded', 'UploadFailure', 'PermissionDenied', 'BadMessage', 'NotSupportedOperation'];

async function writeLog(p: string, text: string, mtime: Date, gz = false) {
  await fsp.mkdir(path.dirname(p), { recursive: true });
  await fsp.writeFile(p, gz ? zlib.gzipSync(text) : text);
  await fsp.utimes(p, mtime, mtime);
}

async function rig(opts: { options?: Record<string, unknown>; sources?: (dir: string) => Promise<unknown[]> } = {}): Promise<Rig> {
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const dir = tempDir('logup-');
  const sources = opts.sources ? await opts.sources(dir) : [{ type: 'files', paths: [path.join(dir, 'logs', '**', '*.log*')] }];
  const daemon = await startDaemon({
    mqtt: { url: broker.url },
    adapters: { logSources: sources },
    plugins: [{ name: 'log-upload', options: { stationId: 'CP-01', retryIntervalS: 0, ...opts.options } }],
  });
  const ev = await EverestSim.connect(broker.url, { moduleId: 'system_api' });
  onTestFinished(() => ev.close());
  ev.startHeartbeat(200);
  const statuses = () => ev.statuses<LogStatus>('log_status');
  return {
    http,
    dir,
    daemon,
    ev,
    request: (payload) => ev.request<Reply>('upload_logs', payload, { timeoutMs: 5000 }),
    names: (id) => statuses().filter((s) => s.request_id === id).map((s) => s.log_status),
    waitFinal: (id, timeoutMs = 15_000) => ev.waitForStatus<LogStatus>('log_status', (s) => s.request_id === id && FINAL.includes(s.log_status), timeoutMs),
    waitCount: async (id, count, timeoutMs = 15_000) => {
      let seen = 0;
      await ev.nextMessage((m) => m.name === 'log_status' && (m.value as LogStatus).request_id === id && ++seen === count, timeoutMs, `${count} statuses for ${id}`, 0);
    },
    workDir: () => path.join(daemon.stateDir, 'plugins', 'log-upload', 'tmp'),
    extract: async (n = 0) => {
      const up = http.uploads[n]!;
      const archive = path.join(dir, `got-${n}.tar.gz`);
      await fsp.copyFile(up.file, archive);
      return extractArchive(archive, path.join(dir, `x-${n}`));
    },
  };
}

test('GetLog: journal and files for the window, redacted, uploaded as one archive with a manifest', async () => {
  const r = await rig({
    options: { redact: ['hunter2', { regex: 'token=[A-Za-z0-9]+' }] },
    sources: async (dir) => {
      await makeJournal(path.join(dir, 'journal'), [
        { at: at(0), message: 'before the window' },
        { at: at(1), message: 'charging session 1 started token=AbC123' },
        { at: at(2), message: 'ocpp reconnect password hunter2' },
        { at: at(3.5), message: 'after the window' },
      ]);
      const logs = path.join(dir, 'logs');
      await writeLog(path.join(logs, 'ocpp', 'ocpp.log.2.gz'), 'rotated long ago\n', at(-2), true);
      await writeLog(path.join(logs, 'ocpp', 'ocpp.log.1.gz'), 'BootNotification hunter2\n', at(3.2), true);
      await writeLog(path.join(logs, 'ocpp', 'ocpp.log'), 'StatusNotification\n', at(5));
      await writeLog(path.join(logs, 'sessions', 'old-session.log'), 'yesterday\n', at(-20));
      return [
        { type: 'journald', directory: path.join(dir, 'journal') },
        { type: 'files', paths: [path.join(logs, 'ocpp', 'ocpp.log*'), path.join(logs, 'sessions', '*.log')] },
      ];
    },
  });
  const reply = await r.request({
    location: `${r.http.url}/logs/`,
    request_id: 7,
    type: 'DiagnosticsLog',
    oldest_timestamp: at(0.5).toISOString(),
    latest_timestamp: at(3).toISOString(),
    retries: 1,
  });
  expect(reply.upload_logs_status).toBe('Accepted');
  expect(reply.file_name).toMatch(/^CP-01_DiagnosticsLog_7_\d{8}T\d{6}Z\.tar\.gz$/);
  await r.waitFinal(7);
  expect(r.names(7)).toEqual(['Uploading', 'Uploaded']);

  expect(r.http.uploads).toHaveLength(1);
  expect(r.http.uploads[0]!.name).toBe(reply.file_name);
  const files = await r.extract();
  const journal = files.get('journald/journal.log')!;
  expect(journal).toContain('charging session 1 started [REDACTED]');
  expect(journal).toContain('ocpp reconnect password [REDACTED]');
  expect(journal).not.toContain('before the window');
  expect(journal).not.toContain('after the window');
  const names = [...files.keys()];
  expect(names.some((n) => n.endsWith('ocpp/ocpp.log.1'))).toBe(true);
  expect(names.some((n) => n.endsWith('ocpp.log.2'))).toBe(false);
  expect(names.some((n) => n.endsWith('/ocpp/ocpp.log'))).toBe(false);
  expect(names.filter((n) => n.includes('old-session'))).toEqual([]);
  const all = [...files.values()].join('\n');
  expect(all).not.toContain('hunter2');
  expect(all).not.toContain('AbC123');

  const manifest = JSON.parse(files.get('MANIFEST.json')!);
  expect(manifest).toMatchObject({
    fileName: reply.file_name,
    stationId: 'CP-01',
    request: { requestId: 7, type: 'DiagnosticsLog' },
    window: { since: at(0.5).toISOString(), until: at(3).toISOString() },
    dropped: [],
    redaction: { rules: 2 },
  });
  expect(manifest.sources.map((s: { type: string; ok: boolean }) => [s.type, s.ok])).toEqual([['journald', true], ['files', true]]);
  expect(manifest.files.map((f: { name: string }) => f.name)).toEqual(expect.arrayContaining(['journald/journal.log']));
  expect(JSON.stringify(manifest)).not.toContain('hunter2');
  // temporary files are gone
  expect(await fsp.readdir(r.workDir())).toEqual([]);
});

test('retries: a 500 and then success gives Uploading then Uploaded', async () => {
  const r = await rig();
  await writeLog(path.join(r.dir, 'logs', 'a.log'), 'x\n', new Date());
  r.http.route('/logs/', { failStatus: 500, failCount: 1 });
  const reply = await r.request({ location: `${r.http.url}/logs/`, request_id: 11, retries: 3, retry_interval_s: 0 });
  expect(reply.upload_logs_status).toBe('Accepted');
  await r.waitFinal(11);
  expect(r.names(11)).toEqual(['Uploading', 'Uploaded']);
  expect(r.http.requests.map((q) => q.status)).toEqual([500, 201]);
  await r.daemon.waitForLog(/retrying the log upload/);
});

test('after the last attempt: UploadFailure; 403: PermissionDenied; unknown host: BadMessage', async () => {
  const r = await rig();
  await writeLog(path.join(r.dir, 'logs', 'a.log'), 'x\n', new Date());
  r.http.route('/fail/', { failStatus: 503, failCount: Infinity });
  r.http.route('/denied/', { failStatus: 403, failCount: Infinity });
  await r.request({ location: `${r.http.url}/fail/`, request_id: 21, retries: 2, retry_interval_s: 0 });
  await r.waitFinal(21);
  await r.request({ location: `${r.http.url}/denied/`, request_id: 22, retries: 3 });
  await r.waitFinal(22);
  await r.request({ location: 'https://logs.example.invalid/upload/', request_id: 23, retries: 3 });
  await r.waitFinal(23);
  expect(r.names(21)).toEqual(['Uploading', 'UploadFailure']);
  expect(r.http.requestsTo('/fail/' + 'x').length).toBe(0);
  expect(r.http.requests.filter((q) => q.url.startsWith('/fail/'))).toHaveLength(2);
  expect(r.names(22)).toEqual(['Uploading', 'PermissionDenied']);
  expect(r.http.requests.filter((q) => q.url.startsWith('/denied/'))).toHaveLength(1);
  expect(r.names(23)).toEqual(['Uploading', 'BadMessage']);
  expect(await fsp.readdir(r.workDir())).toEqual([]);
});

test('GetDiagnostics (no request_id): id -1 and only Uploading, Uploaded, UploadFailure', async () => {
  const r = await rig();
  await writeLog(path.join(r.dir, 'logs', 'a.log'), 'x\n', new Date());
  r.http.route('/denied/', { failStatus: 403, failCount: Infinity });
  const ok = await r.request({ location: `${r.http.url}/diag/` });
  expect(ok.upload_logs_status).toBe('Accepted');
  expect(ok.file_name).toMatch(/^CP-01_DiagnosticsLog_\d{8}T\d{6}Z\.tar\.gz$/);
  await r.waitCount(-1, 2);
  await r.request({ location: `${r.http.url}/denied/`, retries: 1 });
  await r.waitCount(-1, 4);
  await r.request({ location: 'http://nowhere.invalid/x/', retries: 1 });
  await r.waitCount(-1, 6);
  expect(r.names(-1)).toEqual(['Uploading', 'Uploaded', 'Uploading', 'UploadFailure', 'Uploading', 'UploadFailure']);
  expect(r.ev.statuses<LogStatus>('log_status').every((s) => s.request_id === -1)).toBe(true);
});

describe('a second request cancels the running one', () => {
  for (const ocppVersion of ['2.0.1', '1.6'] as const) {
    test(`ocppVersion ${ocppVersion}`, async () => {
      const r = await rig({ options: { ocppVersion } });
      await writeLog(path.join(r.dir, 'logs', 'a.log'), 'x\n', new Date());
      r.http.route('/slow/', { delayMs: 20_000 });
      const first = await r.request({ location: `${r.http.url}/slow/`, request_id: 31 });
      expect(first.upload_logs_status).toBe('Accepted');
      await r.http.waitForRequest((q) => q.url.startsWith('/slow/'));
      const second = await r.request({ location: `${r.http.url}/fast/`, request_id: 32 });
      expect(second.upload_logs_status).toBe('AcceptedCanceled');
      expect(second.file_name).toMatch(/^CP-01_DiagnosticsLog_32_/);
      await r.waitFinal(32);
      expect(r.names(32)).toEqual(['Uploading', 'Uploaded']);
      expect(r.names(31)).toEqual(ocppVersion === '1.6' ? ['Uploading'] : ['Uploading', 'AcceptedCanceled']);
      expect(r.http.uploads.map((u) => u.name)).toEqual([second.file_name]);
      expect(await fsp.readdir(r.workDir())).toEqual([]);
    });
  }
});

test('rejected at once: unsupported scheme, invalid request, no source for the log type', async () => {
  const r = await rig({
    sources: async (dir) => [
      { type: 'files', paths: [path.join(dir, 'logs', '*.log')], logTypes: ['DiagnosticsLog'] },
    ],
  });
  const cases: Record<string, unknown>[] = [
    { location: 'file:///etc/passwd', request_id: 41 },
    { location: 'scp://host/x', request_id: 42 },
    { location: 'http://127.0.0.1:1/x', request_id: 43, retries: 0 },
    { location: 'http://127.0.0.1:1/x', request_id: 44, oldest_timestamp: 'yesterday' },
    { location: 'http://127.0.0.1:1/x', request_id: 45, oldest_timestamp: at(2).toISOString(), latest_timestamp: at(1).toISOString() },
    { request_id: 46 },
    { location: `${r.http.url}/logs/`, request_id: 47, type: 'SecurityLog' },
  ];
  for (const c of cases) expect(await r.request(c), JSON.stringify(c)).toEqual({ upload_logs_status: 'Rejected' });
  // not even an object
  expect(await r.request('nonsense' as unknown as Record<string, unknown>)).toEqual({ upload_logs_status: 'Rejected' });
  // still working afterwards
  await writeLog(path.join(r.dir, 'logs', 'a.log'), 'x\n', new Date());
  expect((await r.request({ location: `${r.http.url}/logs/`, request_id: 48 })).upload_logs_status).toBe('Accepted');
  await r.waitFinal(48);
  expect(r.ev.statuses<LogStatus>('log_status').map((s) => s.request_id)).toEqual([48, 48]);
  await r.daemon.waitForLog(/no configured log source serves this log type/);
});

test('SecurityLog selects only the sources configured for it', async () => {
  const r = await rig({
    sources: async (dir) => {
      await writeLog(path.join(dir, 'ocpp', 'cp.security.log'), 'security event\n', new Date());
      await writeLog(path.join(dir, 'ocpp', 'cp.ocpp.log'), 'ocpp message\n', new Date());
      return [
        { type: 'files', paths: [path.join(dir, 'ocpp', '*.security.log')], logTypes: ['SecurityLog'] },
        { type: 'files', paths: [path.join(dir, 'ocpp', '*.ocpp.log')], logTypes: ['DiagnosticsLog'] },
      ];
    },
  });
  const reply = await r.request({ location: `${r.http.url}/sec/`, request_id: 51, type: 'SecurityLog' });
  expect(reply.file_name).toMatch(/^CP-01_SecurityLog_51_/);
  await r.waitFinal(51);
  const files = await r.extract();
  const content = [...files.entries()].filter(([n]) => n !== 'MANIFEST.json').map(([, c]) => c);
  expect(content).toEqual(['security event\n']);
});

test('credentials in the location are used but never logged; shell metacharacters stay inert', async () => {
  const r = await rig({ options: { httpMethod: 'POST' } });
  await writeLog(path.join(r.dir, 'logs', 'a.log'), 'x\n', new Date());
  r.http.route('/auth/', { auth: { user: 'operator', password: 'TopSecretPw9' } });
  await r.request({ location: `http://operator:TopSecretPw9@127.0.0.1:${r.http.port}/auth/`, request_id: 61 });
  await r.waitFinal(61);
  expect(r.names(61)).toEqual(['Uploading', 'Uploaded']);
  expect(r.http.uploads[0]!.contentDisposition).toContain(`filename="${r.http.uploads[0]!.name}"`);
  await r.request({ location: `http://operator:WrongSecret77@127.0.0.1:${r.http.port}/auth/`, request_id: 62 });
  await r.waitFinal(62);
  expect(r.names(62)).toEqual(['Uploading', 'PermissionDenied']);
  const pwned = path.join(r.dir, 'pwned');
  const hostile = `http://127.0.0.1:${r.http.port}/up/$(touch%20${pwned})/;touch%20${pwned};%60touch%20${pwned}%60/`;
  const reply = await r.request({ location: hostile, request_id: 63 });
  expect(reply.upload_logs_status).toBe('Accepted');
  await r.waitFinal(63);
  expect(r.names(63)).toEqual(['Uploading', 'Uploaded']);
  expect(r.http.uploads[1]!.path.startsWith('/up/$(touch')).toBe(true);
  expect(existsSync(pwned)).toBe(false);
  const logs = r.daemon.logText();
  expect(logs).toContain('127.0.0.1');
  expect(logs).not.toContain('TopSecretPw9');
  expect(logs).not.toContain('WrongSecret77');
});

test('size cap: the oldest files are dropped first and the manifest says so', async () => {
  const r = await rig({ options: { maxArchiveBytes: 64 * 1024 } });
  const noise = (tag: string) => Array.from({ length: 1500 }, (_, i) => `${tag} ${i} ${randomBytes(24).toString('base64')}\n`).join('');
  const logs = path.join(r.dir, 'logs');
  await writeLog(path.join(logs, 'day1.log'), noise('day1'), at(0));
  await writeLog(path.join(logs, 'day2.log'), noise('day2'), at(24));
  await writeLog(path.join(logs, 'day3.log'), noise('day3'), at(48));
  await r.request({ location: `${r.http.url}/cap/`, request_id: 71 });
  await r.waitFinal(71);
  expect(r.http.uploads[0]!.size).toBeLessThanOrEqual(64 * 1024);
  const files = await r.extract();
  const names = [...files.keys()].map((n) => path.basename(n)).sort();
  expect(names).toContain('day3.log');
  expect(names).not.toContain('day1.log');
  const manifest = JSON.parse(files.get('MANIFEST.json')!);
  expect(manifest.dropped.map((d: { name: string }) => path.basename(d.name))).toContain('day1.log');
  expect(manifest.dropped.every((d: { reason: string }) => /maxArchiveBytes/.test(d.reason))).toBe(true);
});

test('FTP upload with credentials from the location', async () => {
  const r = await rig();
  const ftp = await startFtpServer({ user: 'logs', password: 'ftp-Pw-1' });
  onTestFinished(() => ftp.close());
  await writeLog(path.join(r.dir, 'logs', 'a.log'), 'ftp content\n', new Date());
  const reply = await r.request({ location: `${ftp.url}/`, request_id: 81 });
  await r.waitFinal(81);
  expect(r.names(81)).toEqual(['Uploading', 'Uploaded']);
  const stored = path.join(ftp.root, reply.file_name!);
  const files = await extractArchive(stored, path.join(r.dir, 'ftp-x'));
  expect([...files.values()]).toContain('ftp content\n');
  expect(r.daemon.logText()).not.toContain('ftp-Pw-1');
});

test('killed mid-upload: the next start reports UploadFailure and removes the leftovers', async () => {
  const http = await startHttpServer();
  onTestFinished(() => http.close());
  const dir = tempDir('logup-kill-');
  await writeLog(path.join(dir, 'logs', 'a.log'), 'x\n', new Date());
  http.route('/slow/', { delayMs: 30_000 });
  const stateDir = path.join(dir, 'state');
  const config = {
    stateDir,
    mqtt: { url: broker.url },
    adapters: { logSources: [{ type: 'files', paths: [path.join(dir, 'logs', '*.log')] }] },
    plugins: [{ name: 'log-upload', options: { stationId: 'CP-01' } }],
  };
  const ev = await EverestSim.connect(broker.url, { moduleId: 'system_api' });
  onTestFinished(() => ev.close());
  ev.startHeartbeat(200);
  const d1 = await spawnDaemon(config);
  await d1.waitForLog(/listening for EVerest requests/);
  await ev.request('upload_logs', { location: `${http.url}/slow/`, request_id: 91 }, { timeoutMs: 10_000 });
  await http.waitForRequest((q) => q.url.startsWith('/slow/'), 15_000);
  const tmp = path.join(stateDir, 'plugins', 'log-upload', 'tmp');
  expect((await fsp.readdir(tmp)).length).toBe(1);
  d1.kill('SIGKILL');
  await d1.exited;
  const d2 = await startDaemon(config);
  const s = await ev.waitForStatus<LogStatus>('log_status', (x) => x.request_id === 91 && x.log_status === 'UploadFailure', 10_000);
  expect(s).toEqual({ log_status: 'UploadFailure', request_id: 91 });
  expect(await fsp.readdir(tmp)).toEqual([]);
  await d2.waitForLog(/interrupted by a restart/);
});
