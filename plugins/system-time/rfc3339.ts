/**
 * Strict RFC 3339 date-time parsing (section 5.6): `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, with
 * `T`/`t`/space as separator and `z` accepted. Rejects calendar-impossible values (month 13,
 * 30 February, hour 24) instead of letting Date roll them over. A leap second (:60) is taken as
 * :59.999.
 */
const RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** the instant, or undefined when `text` is not a valid RFC 3339 date-time */
export function parseRfc3339(text: unknown): Date | undefined {
  if (typeof text !== 'string' || text.length > 64) return undefined;
  const m = RE.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  let offsetMin = 0;
  const zone = m[8]!;
  if (zone !== 'Z' && zone !== 'z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (zone.startsWith('-') ? -1 : 1) * (oh * 60 + om);
  }
  const ms = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  const utc = Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59), second === 60 ? 999 : ms);
  // Date.UTC maps years 0..99 to 1900..1999; build those explicitly
  const date = new Date(utc);
  if (year < 100) date.setUTCFullYear(year);
  return new Date(date.getTime() - offsetMin * 60_000);
}
