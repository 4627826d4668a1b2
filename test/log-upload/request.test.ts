import { describe, expect, it } from 'vitest';
import { makeFileName, parseRequest } from '../../plugins/log-upload/index.js';

describe('file name', () => {
  const now = new Date('2026-11-20T08:05:09.123Z');
  it('is station, type, request id and UTC time', () => {
    expect(makeFileName('CP-01', 'DiagnosticsLog', 7, now)).toBe('CP-01_DiagnosticsLog_7_20261120T080509Z.tar.gz');
    expect(makeFileName('CP-01', 'SecurityLog', -1, now)).toBe('CP-01_SecurityLog_20261120T080509Z.tar.gz');
  });
  it('uses safe characters only and stays well under 255', () => {
    const name = makeFileName('../ev charger;rm -rf /'.repeat(20), '$(reboot)/'.repeat(30), 2147483647, now);
    expect(name).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(name.length).toBeLessThan(160);
    expect(name.startsWith('.')).toBe(false);
  });
});

describe('request checks', () => {
  it('accepts the OCPP shapes', () => {
    expect(parseRequest({ location: 'https://x/y' })).toEqual({ location: 'https://x/y' });
    const full = { location: 'ftp://x/', request_id: 3, retries: 2, retry_interval_s: 0, type: 'SecurityLog', oldest_timestamp: '2026-11-20T08:00:00Z', latest_timestamp: '2026-11-20T09:00:00.5+01:00' };
    expect(parseRequest(full)).toEqual(full);
  });
  it.each([
    [null, /not an object/],
    [[], /not an object/],
    [{}, /location/],
    [{ location: 'x', request_id: 1.5 }, /request_id/],
    [{ location: 'x', retries: 0 }, /retries/],
    [{ location: 'x', retry_interval_s: -1 }, /retry_interval_s/],
    [{ location: 'x', oldest_timestamp: '2026-11-20' }, /oldest_timestamp/],
    [{ location: 'x', latest_timestamp: 12 }, /latest_timestamp/],
    [{ location: 'x', type: '' }, /type/],
    [{ location: 'x', oldest_timestamp: '2026-11-20T09:00:00Z', latest_timestamp: '2026-11-20T08:00:00Z' }, /after/],
  ])('rejects %j', (payload, why) => {
    expect(parseRequest(payload)).toMatch(why);
  });
});
