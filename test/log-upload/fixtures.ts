/** Shared fixtures of the log-upload tests: real journal files, archive extraction, a quiet logger. */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { execa } from 'execa';
import type { Logger } from '../../core/api.js';

export interface JournalEntry {
  at: Date;
  message: string;
  identifier?: string;
  unit?: string;
  priority?: number;
}

/** Write `entries` as a real journal file `<dir>/<name>.journal` (export format -> systemd-journal-remote). */
export async function makeJournal(dir: string, entries: JournalEntry[], name = 'test'): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  const lines = entries.map((e, i) =>
    [
      `__REALTIME_TIMESTAMP=${e.at.getTime() * 1000}`,
      `__MONOTONIC_TIMESTAMP=${1_000_000 + i}`,
      '_BOOT_ID=0123456789abcdef0123456789abcdef',
      '_MACHINE_ID=fedcba9876543210fedcba9876543210',
      '_HOSTNAME=testcharger',
      `SYSLOG_IDENTIFIER=${e.identifier ?? 'everest'}`,
      `PRIORITY=${e.priority ?? 6}`,
      `_PID=${100 + i}`,
      ...(e.unit ? [`_SYSTEMD_UNIT=${e.unit}`] : []),
      `MESSAGE=${e.message}`,
      '',
      '',
    ].join('\n'),
  );
  const exportFile = path.join(dir, `${name}.export`);
  await fsp.writeFile(exportFile, lines.join(''));
  const out = path.join(dir, `${name}.journal`);
  await execa('/lib/systemd/systemd-journal-remote', [`--output=${out}`, '--split-mode=none', exportFile]);
  await fsp.rm(exportFile);
  return out;
}

/** Extract a .tar.gz with the system's tar; returns file name -> content. */
export async function extractArchive(archive: string, into: string): Promise<Map<string, string>> {
  await fsp.mkdir(into, { recursive: true });
  await execa('tar', ['-xzf', archive, '-C', into]);
  const out = new Map<string, string>();
  for (const rel of (await fsp.readdir(into, { recursive: true })) as string[]) {
    const full = path.join(into, rel);
    if ((await fsp.stat(full)).isFile()) out.set(rel, await fsp.readFile(full, 'utf8'));
  }
  return out;
}

/** Names in archive order, as `tar -tzf` lists them. */
export async function listArchive(archive: string): Promise<string[]> {
  const r = await execa('tar', ['-tzf', archive]);
  return r.stdout.split('\n').filter(Boolean);
}

export const quietLog: Logger = {
  trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {},
  child: () => quietLog,
};

/** 2026-11-20T08:00:00Z plus `h` hours */
export const at = (h: number): Date => new Date(Date.UTC(2026, 10, 20, 8, 0, 0) + h * 3_600_000);
