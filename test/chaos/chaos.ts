/**
 * Shared pieces of the chaos suites (broker chaos, EVerest chaos, power loss):
 * a seeded PRNG whose seed is printed and can be overridden from the environment, the OCPP
 * status orders a sequence seen by EVerest must follow, and checks on the daemon's state dir.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

// -------------------------------------------------------------------------------------------
// seeded randomness
// -------------------------------------------------------------------------------------------

export interface Rng {
  readonly seed: number;
  /** float in [0, 1) */
  next(): number;
  /** integer in [lo, hi] */
  int(lo: number, hi: number): number;
  pick<T>(items: readonly T[]): T;
  shuffle<T>(items: readonly T[]): T[];
}

/** mulberry32: small, fast, and the same sequence on every platform for a given seed. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    seed,
    next,
    int,
    pick: (items) => items[int(0, items.length - 1)]!,
    shuffle: (items) => {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(0, i);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    },
  };
}

/**
 * The seed for a suite: `process.env[name]` when set (decimal or 0x hex), else `fallback`.
 * Printed, so that a failing run can be replayed with `<name>=<seed>`.
 */
export function seedFrom(name: string, fallback: number, suite: string): Rng {
  const raw = process.env[name];
  const seed = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${name}=${raw} is not a non-negative integer`);
  console.log(`[${suite}] seed ${seed} (replay with ${name}=${seed})`);
  return rng(seed);
}

/** A positive integer from the environment, or the default. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}=${raw} is not a positive integer`);
  return n;
}

// -------------------------------------------------------------------------------------------
// OCPP status orders (shared/docs/ocpp-requirements.md §2)
// -------------------------------------------------------------------------------------------

/**
 * Rank of each firmware status in an unsigned update with a reboot (sequence 2, with pauses and
 * the "Downloaded again" a restart in the waiting phase gives). Statuses of equal rank may
 * alternate (Downloading <-> DownloadPaused).
 */
const FW_RANK: Record<string, number> = {
  Downloading: 1,
  DownloadPaused: 1,
  Downloaded: 2,
  SignatureVerified: 3,
  InstallScheduled: 4,
  Installing: 5,
  InstallRebooting: 6,
  Installed: 7,
  InstallationFailed: 7,
  DownloadFailed: 7,
  InstallVerificationFailed: 7,
  InvalidSignature: 7,
};
const LOG_RANK: Record<string, number> = {
  Uploading: 1,
  Uploaded: 2,
  UploadFailure: 2,
  PermissionDenied: 2,
  BadMessage: 2,
  NotSupportedOperation: 2,
  AcceptedCanceled: 2,
};

/**
 * Why `seen` (the statuses of one request, in the order EVerest received them) is not a valid
 * subsequence of the OCPP sequence, or undefined when it is. Repeats are allowed (re-sends after
 * a restart are legal: libocpp drops an identical consecutive pair), going back is not, and the
 * end state is the last status and appears once.
 */
export function sequenceProblem(kind: 'firmware' | 'log', seen: readonly string[]): string | undefined {
  const rank = kind === 'firmware' ? FW_RANK : LOG_RANK;
  const finalRank = kind === 'firmware' ? 7 : 2;
  let last = 0;
  for (const [i, s] of seen.entries()) {
    const r = rank[s];
    if (r === undefined) return `unexpected status ${s} at ${i} in [${seen.join(', ')}]`;
    if (r < last) return `${s} after a later status at ${i} in [${seen.join(', ')}]`;
    if (last === finalRank) return `${s} after the end state at ${i} in [${seen.join(', ')}]`;
    last = r;
  }
  return undefined;
}

// -------------------------------------------------------------------------------------------
// the state dir
// -------------------------------------------------------------------------------------------

/** Every file under `dir` (relative paths), recursively. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      let isDir: boolean;
      try {
        isDir = statSync(p).isDirectory();
      } catch {
        continue; // removed meanwhile by the running daemon
      }
      if (isDir) walk(p, r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

/** `*.json` files under `dir` that do not parse, with the parse error; and moved-aside corrupt files. */
export function corruptStateFiles(dir: string): string[] {
  const bad: string[] = [];
  for (const f of filesUnder(dir)) {
    if (/\.corrupt-/.test(f)) bad.push(`${f}: a state file was found corrupt and moved aside`);
    if (!f.endsWith('.json')) continue;
    let text: string;
    try {
      text = readFileSync(path.join(dir, f), 'utf8');
    } catch {
      continue; // removed meanwhile by the running daemon (atomic writes never leave a partial file)
    }
    try {
      JSON.parse(text);
    } catch (err) {
      bad.push(`${f}: ${(err as Error).message}`);
    }
  }
  return bad;
}

/** Resolves after `ms` (only for outage lengths chosen by the PRNG, never to wait for an event). */
export const hold = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms until it holds. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
