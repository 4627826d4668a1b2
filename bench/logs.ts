/**
 * Log upload benchmark: our collect + redact + compress + upload against the shell pipelines the
 * reference modules use (`journalctl | gzip | curl -T -` and `tar | gzip | curl -T -`), on the same
 * data in the same run, to a loopback HTTP sink.
 *
 * Data: a real journal file made with systemd-journal-remote (size from BENCH_LOG_MB, default 200 MB
 * of journal file) plus plain log files; and a run at 1/8 of that size to show that our peak RSS
 * does not grow with the amount of log. Ours runs in a child process so its peak RSS can be read.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { Logger } from '../core/api.js';

const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';
/** journal-file bytes per entry, measured (about 330 bytes with the default compression) */
const ENTRIES_PER_MB = 3000;

const quiet: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {}, child: () => quiet };

interface Dataset {
  journalDir: string;
  filesDir: string;
  journalBytes: number;
  filesBytes: number;
  entries: number;
}

/** The journal as several files written in parallel (systemd-journal-remote is the slow part). */
async function makeJournal(dir: string, entries: number): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const parts = 4;
  const per = Math.ceil(entries / parts);
  const queue = Array.from({ length: parts }, (_, p) => p);
  const worker = async () => {
    for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
      await makeJournalPart(path.join(dir, `system-${p}.journal`), p * per, Math.min(entries, (p + 1) * per));
    }
  };
  await Promise.all([worker(), worker()]);
}

async function makeJournalPart(file: string, from: number, to: number): Promise<void> {
  const child = spawn(JOURNAL_REMOTE, [`--output=${file}`, '--split-mode=none', '-'], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const base = Date.UTC(2026, 10, 20) * 1000;
  let batch: string[] = [];
  for (let i = from; i < to; i++) {
    const msg = `evse ${i % 4} session ${((i * 2654435761) >>> 0).toString(16)} power=${(i * 37) % 22000}W state=Charging meter=${i * 13} soc=${i % 100}${i % 50 === 0 ? ' auth token=SECRET' + i : ''}`;
    batch.push(
      `__REALTIME_TIMESTAMP=${base + i * 10_000}\n__MONOTONIC_TIMESTAMP=${1_000_000 + i * 10_000}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=charger\nSYSLOG_IDENTIFIER=${i % 7 === 0 ? 'ocpp' : 'everest'}\n_PID=${100 + (i % 50)}\nPRIORITY=6\nMESSAGE=${msg}\n\n`,
    );
    if (batch.length >= 2000) {
      if (!child.stdin.write(batch.join(''))) await once(child.stdin, 'drain');
      batch = [];
    }
  }
  child.stdin.end(batch.join(''));
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error(`systemd-journal-remote exited with ${code}`);
}

async function makeFiles(dir: string, totalBytes: number): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const perFile = 4 * 1024 * 1024;
  const count = Math.max(1, Math.round(totalBytes / perFile));
  for (let f = 0; f < count; f++) {
    const ws = fs.createWriteStream(path.join(dir, `ocpp-${f}.log`));
    let written = 0;
    let i = 0;
    while (written < perFile) {
      const line = `2026-11-20T08:${String(i % 60).padStart(2, '0')}:00.000Z [OCPP] CALL [${f * 1_000_000 + i},"MeterValues",{"connectorId":${i % 2},"meterValue":[{"sampledValue":[{"value":"${i * 7}"}]}]}]\n`;
      if (!ws.write(line)) await once(ws, 'drain');
      written += line.length;
      i++;
    }
    ws.end();
    await once(ws, 'close');
  }
}

async function dataset(root: string, journalMb: number): Promise<Dataset> {
  const entries = Math.round(journalMb * ENTRIES_PER_MB);
  const journalDir = path.join(root, 'journal');
  const filesDir = path.join(root, 'files');
  await makeJournal(journalDir, entries);
  await makeFiles(filesDir, (journalMb / 4) * 1024 * 1024);
  const size = async (d: string) => (await Promise.all((await fsp.readdir(d)).map((n) => fsp.stat(path.join(d, n))))).reduce((a, s) => a + s.size, 0);
  return { journalDir, filesDir, journalBytes: await size(journalDir), filesBytes: await size(filesDir), entries };
}

/** A loopback HTTP sink that counts and discards what it receives. */
async function sink(): Promise<{ url: string; received: () => number; close: () => Promise<void> }> {
  let received = 0;
  const server = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => res.writeHead(201).end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => received,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Ours, in a child process: returns wall time, archive size and the child's peak RSS. */
async function runOurs(ds: Dataset, url: string, work: string): Promise<{ ms: number; processMs: number; archiveBytes: number; peakRssMb: number }> {
  const self = fileURLToPath(import.meta.url);
  const args = [...process.execArgv, self, '--child', JSON.stringify({ ds, url, work })];
  const t0 = performance.now();
  const r = await execa(process.execPath, args, { reject: true });
  const processMs = performance.now() - t0;
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { archiveBytes: number; maxRssKb: number; workMs: number };
  return { ms: out.workMs, processMs, archiveBytes: out.archiveBytes, peakRssMb: Math.round(out.maxRssKb / 1024) };
}

/** The reference: journalctl | gzip | curl, then tar | gzip | curl. */
async function runBaseline(ds: Dataset, url: string): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  await execa('journalctl', ['--directory', ds.journalDir, '-o', 'short-iso-precise', '--utc', '--no-pager', '-q'])
    .pipe('gzip', ['-6'])
    .pipe('curl', ['-sS', '-f', '-T', '-', `${url}/baseline/journal.log.gz`]);
  await execa('tar', ['-cf', '-', '-C', ds.filesDir, '.'])
    .pipe('gzip', ['-6'])
    .pipe('curl', ['-sS', '-f', '-T', '-', `${url}/baseline/files.tar.gz`]);
  return { ms: performance.now() - t0, bytes: 0 };
}

async function child(cfg: { ds: Dataset; url: string; work: string }): Promise<void> {
  const { default: journald } = await import('../adapters/log-source/journald.js');
  const { default: files } = await import('../adapters/log-source/files.js');
  const { ArchiveBuilder } = await import('../plugins/log-upload/archive.js');
  const { makeRedactor } = await import('../plugins/log-upload/redact.js');
  const { upload } = await import('../core/net/upload.js');
  const deps = { log: quiet, stateDir: cfg.work, env: { ...process.env } };
  const t0 = performance.now();
  const sources = [
    await journald.create({ directory: cfg.ds.journalDir }, deps),
    await files.create({ paths: [path.join(cfg.ds.filesDir, '*.log')] }, deps),
  ];
  const signal = new AbortController().signal;
  const b = new ArchiveBuilder({ dir: path.join(cfg.work, 'stage'), signal, redactor: makeRedactor([{ regex: 'token=\\S+' }]) });
  await b.init();
  for (const s of sources) await s.collect({}, b.sink(s.type, s.type), signal);
  const archive = path.join(cfg.work, 'logs.tar.gz');
  const packed = await b.pack(archive, undefined, (x) => ({ files: x.included.length }));
  const r = await upload({ url: new URL(`${cfg.url}/ours/`), file: archive, fileName: 'logs.tar.gz', signal, attempts: 1, retryIntervalMs: 0 });
  if (!r.ok) throw new Error(`upload failed: ${r.reason}`);
  const workMs = performance.now() - t0;
  await fsp.rm(cfg.work, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify({ archiveBytes: packed.bytes, maxRssKb: process.resourceUsage().maxRSS, workMs })}\n`);
}

async function measure(root: string, journalMb: number, url: string) {
  const tg = performance.now();
  const ds = await dataset(path.join(root, `d${journalMb}`), journalMb);
  const generateMs = performance.now() - tg;
  const baseline = await runBaseline(ds, url);
  const ours = await runOurs(ds, url, path.join(root, `work${journalMb}`));
  await fsp.rm(path.join(root, `d${journalMb}`), { recursive: true, force: true });
  return {
    journalFileMb: +(ds.journalBytes / 1048576).toFixed(1),
    filesMb: +(ds.filesBytes / 1048576).toFixed(1),
    journalEntries: ds.entries,
    generateS: +(generateMs / 1000).toFixed(1),
    baselineS: +(baseline.ms / 1000).toFixed(2),
    oursS: +(ours.ms / 1000).toFixed(2),
    oursProcessS: +(ours.processMs / 1000).toFixed(2),
    timeRatio: +(ours.ms / baseline.ms).toFixed(2),
    oursArchiveMb: +(ours.archiveBytes / 1048576).toFixed(2),
    oursPeakRssMb: ours.peakRssMb,
  };
}

export default async function run(): Promise<Record<string, unknown>> {
  const journalMb = Number(process.env.BENCH_LOG_MB ?? 200);
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'bench-logs-'));
  const s = await sink();
  try {
    const small = await measure(root, Math.max(1, Math.round(journalMb / 8)), s.url);
    const large = await measure(root, journalMb, s.url);
    return {
      name: 'logs',
      description: 'collect (journal + files) + redact + tar.gz + HTTP PUT vs journalctl|gzip|curl + tar|gzip|curl',
      small,
      large,
      rssGrowthMb: large.oursPeakRssMb - small.oursPeakRssMb,
    };
  } finally {
    await s.close();
    await fsp.rm(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3]!) as { ds: Dataset; url: string; work: string }).catch((err: unknown) => {
    process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
    process.exit(1);
  });
} else if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  run().then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`));
}
