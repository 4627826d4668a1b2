/**
 * Load, CI size: LOAD_S seconds (default 5) at LOAD_RATE round trips per second (default 5,000)
 * against the daemon as a child process. Pass: the daemon stays up, no reply is lost, duplicated
 * or wrong, and RSS stays flat. Latency (p50/p99) and the rate actually achieved are printed, not
 * asserted: they depend on the machine. `npm run test:load` runs the 60 s version.
 */
import { describe, expect, it } from 'vitest';
import { memoryFlat, runLoad } from './load.js';

const SECONDS = Number(process.env.LOAD_S ?? 5);
const RATE = Number(process.env.LOAD_RATE ?? 5000);
const OPS = (process.env.LOAD_OPS ?? 'is_reset_allowed').split(',') as ('is_reset_allowed' | 'get_boot_reason')[];

describe('load', () => {
  it(`${RATE} request/reply round trips per second for ${SECONDS} s: none lost, memory flat`, async () => {
    const r = await runLoad({ seconds: SECONDS, rate: RATE, ops: OPS, logLevel: process.env.LOAD_LOG_LEVEL });
    process.stdout.write(`load ${JSON.stringify(r)}\n`);
    expect(r.daemonAlive).toBe(true);
    expect(r.sent).toBeGreaterThan(0);
    expect({ lost: r.lost, duplicates: r.duplicates, wrong: r.wrong }).toEqual({ lost: 0, duplicates: 0, wrong: 0 });
    expect(r.replied).toBe(r.sent);
    expect(memoryFlat(r), `RSS ${JSON.stringify(r.rssMB)}`).toBe(true);
  }, 180_000);
});
