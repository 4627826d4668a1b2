/** Time formats the clock tools take. All in UTC, whole seconds. */

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `YYYY-MM-DD HH:MM:SS` in UTC (timedatectl set-time, date -s) */
export function utcSpaced(time: Date): string {
  return (
    `${pad(time.getUTCFullYear(), 4)}-${pad(time.getUTCMonth() + 1)}-${pad(time.getUTCDate())} ` +
    `${pad(time.getUTCHours())}:${pad(time.getUTCMinutes())}:${pad(time.getUTCSeconds())}`
  );
}

/** RFC 3339 in UTC without fractions: `YYYY-MM-DDTHH:MM:SSZ` */
export function rfc3339Utc(time: Date): string {
  return `${utcSpaced(time).replace(' ', 'T')}Z`;
}

export function assertValidDate(time: Date): void {
  if (!(time instanceof Date) || Number.isNaN(time.getTime())) throw new Error('invalid time');
}
