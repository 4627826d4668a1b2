import { describe, expect, test } from 'vitest';
import { ftpAccessOptions, ftpTlsMode } from '../../core/net/ftp.js';

describe('how ftp and ftps locations are reached (download and upload alike)', () => {
  test.each([
    ['ftp://h/f', 'none', 21],
    ['ftp://h:2121/f', 'none', 2121],
    ['ftps://h/f', 'implicit', 990],
    ['ftps://h:990/f', 'implicit', 990],
    ['ftps://h:21/f', 'explicit', 21],
    ['ftps://h:4021/f', 'explicit', 4021],
  ])('%s: %s TLS on port %i', (location, mode, port) => {
    const url = new URL(location);
    expect(ftpTlsMode(url)).toBe(mode);
    const access = ftpAccessOptions(url, undefined);
    expect(access.port).toBe(port);
    expect(access.secure).toBe(mode === 'implicit' ? 'implicit' : mode === 'explicit');
    if (mode !== 'none') expect(access.secureOptions?.rejectUnauthorized).toBe(true);
  });

  test('credentials come from the URL, decoded; anonymous otherwise; IPv6 hosts unbracketed', () => {
    expect(ftpAccessOptions(new URL('ftps://op%40site:p%3Ass@[::1]:4021/x'), { rejectUnauthorized: false })).toMatchObject({
      host: '::1',
      user: 'op@site',
      password: 'p:ss',
      secureOptions: { rejectUnauthorized: false },
    });
    expect(ftpAccessOptions(new URL('ftp://h/x'), undefined)).toMatchObject({ user: 'anonymous', secure: false });
  });
});
