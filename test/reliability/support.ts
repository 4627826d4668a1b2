/**
 * Shared pieces of the reliability suites: RSS of a child process, percentiles, the m2e topics the
 * daemon may publish on, and a check that every persisted file still parses.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { systemApiSchemas } from '../../core/schemas.js';

/** Resident set size of a process in bytes, from /proc/<pid>/status (undefined once it is gone). */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** user+system CPU time of a process in ms, from /proc/<pid>/stat */
export function cpuMsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11] utime, fields[12] stime (1-based 14 and 15 in proc(5)), in clock ticks (100 Hz on Linux)
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

export const MB = 1024 * 1024;
export const mb = (bytes: number | undefined): number => Math.round(((bytes ?? 0) / MB) * 10) / 10;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function latencySummary(values: number[]): { n: number; p50: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return { n: s.length, p50: r(percentile(s, 50)), p99: r(percentile(s, 99)), max: r(s[s.length - 1] ?? NaN) };
}

export type Outbound =
  | { kind: 'reply'; id: string }
  | { kind: 'status'; name: 'firmware_update_status' | 'log_status' | 'communication_check' }
  | { kind: 'inbound' }
  | { kind: 'foreign' };

/** Classifies a topic seen on the broker: the daemon may only publish replies and its status variables. */
export function classify(topic: string, moduleId = 'system_api', prefix = ''): Outbound {
  const base = `${prefix}everest_api/1/system/${moduleId}/`;
  if (topic.startsWith(`${base}e2m/`)) return { kind: 'inbound' };
  if (topic.startsWith(`${base}m2e/reply/`)) {
    const id = topic.slice(`${base}m2e/reply/`.length);
    return /^[A-Za-z0-9._:-]{1,128}$/.test(id) ? { kind: 'reply', id } : { kind: 'foreign' };
  }
  for (const name of ['firmware_update_status', 'log_status', 'communication_check'] as const) {
    if (topic === `${base}m2e/${name}`) return { kind: 'status', name };
  }
  return { kind: 'foreign' };
}

/** Why a status message is invalid, or undefined. */
export function statusProblem(name: string, raw: Buffer): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    return `not JSON: ${raw.toString('utf8').slice(0, 80)}`;
  }
  return systemApiSchemas().status(name, value);
}

/** Every file under `dir`; *.json must parse, *.jsonl line by line; returns the problems found. */
export function checkPersisted(dir: string): { files: number; problems: string[]; tempFiles: string[] } {
  const problems: string[] = [];
  const tempFiles: string[] = [];
  let files = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) {
        walk(p);
        continue;
      }
      files++;
      if (/\.corrupt-/.test(name)) problems.push(`${path.relative(dir, p)}: a state file was found corrupt and moved aside`);
      // temp files of a write cut short by the exit are by design: the next start removes them
      if (name.endsWith('.tmp') || /\.tmp-\d+$/.test(name)) tempFiles.push(path.relative(dir, p));
      if (name.endsWith('.json')) {
        try {
          JSON.parse(readFileSync(p, 'utf8'));
        } catch (err) {
          problems.push(`${path.relative(dir, p)}: ${(err as Error).message}`);
        }
      }
      if (name.endsWith('.jsonl')) {
        readFileSync(p, 'utf8').split('\n').filter(Boolean).forEach((line, i) => {
          try {
            JSON.parse(line);
          } catch (err) {
            problems.push(`${path.relative(dir, p)}:${i + 1}: ${(err as Error).message}`);
          }
        });
      }
    }
  };
  walk(dir);
  return { files, problems, tempFiles };
}

/** Resolves when `predicate` is true (checked on every `tick`), or rejects after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs: number, what: string, tickMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, tickMs));
  }
}
