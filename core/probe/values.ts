/**
 * Parsing of probe option values; every problem is a ProbeError (clear message, exit 2).
 */
import { InvalidArgumentError } from 'commander';
import { parseRfc3339 } from '../../plugins/system-time/rfc3339.js';

/** commander parser: a number >= min (seconds, milliseconds) */
export function numberArg(min = 0, integer = false): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`expected ${integer ? 'an integer' : 'a number'} >= ${min}`);
    }
    return n;
  };
}

/** commander parser: any integer (request ids may be negative: -1 is OCPP 1.6) */
export function intArg(value: string): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected an integer');
  return n;
}

/** commander parser: a u64 heartbeat counter */
export function u64Arg(value: string): bigint {
  if (!/^(0|[1-9]\d{0,19})$/.test(value.trim())) throw new InvalidArgumentError('expected an unsigned 64-bit integer');
  const n = BigInt(value.trim());
  if (n > (1n << 64n) - 1n) throw new InvalidArgumentError('expected an unsigned 64-bit integer');
  return n;
}

const RELATIVE = /^([+-])(\d+(?:\.\d+)?)(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * commander parser for timestamps: an RFC 3339 date-time (sent as given), `now`, or a time
 * relative to now such as `+30s`, `+5m`, `-2h`, `-1d` (sent in UTC).
 */
export function timeArg(value: string): string {
  const v = value.trim();
  if (v === 'now') return new Date().toISOString();
  const rel = RELATIVE.exec(v);
  if (rel) return new Date(Date.now() + (rel[1] === '-' ? -1 : 1) * Number(rel[2]) * UNIT_MS[rel[3] as keyof typeof UNIT_MS]).toISOString();
  if (!parseRfc3339(v)) throw new InvalidArgumentError('expected an RFC 3339 date-time (2026-05-01T12:00:00Z), "now", or relative to now like "+30s", "+5m", "-2h", "-1d"');
  return v;
}
