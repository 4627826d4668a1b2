import { describe, expect, it } from 'vitest';
import { checkUrl, credentialsFromUrl, MAX_URL_LENGTH, redactUrl } from '../../core/net/url.js';

const SCHEMES = ['http', 'https', 'ftp', 'ftps'];

function warnings() {
  const lines: { obj: unknown; msg?: string }[] = [];
  return { lines, log: { warn: (obj: unknown, msg?: string) => lines.push({ obj, msg }) } };
}

describe('checkUrl', () => {
  it('accepts http, https, ftp and ftps locations with hosts', () => {
    for (const loc of [
      'http://example.com/fw.bin',
      'https://cdn.example.com:8443/a/b/fw-1.2.raucb?x=1',
      'ftp://user:pw@10.0.0.1/fw.swu',
      'ftps://files.example.com/logs/',
      'https://[::1]:8080/fw',
    ]) {
      const r = checkUrl(loc, SCHEMES);
      expect(r.ok, loc).toBe(true);
      if (r.ok) expect(r.url.href).toBe(new URL(loc).href);
    }
  });

  it('accepts schemes given with a colon and in any case', () => {
    expect(checkUrl('HTTPS://example.com/x', ['https:']).ok).toBe(true);
  });

  it.each([
    [42, /not a string \(number\)/],
    [null, /not a string \(null\)/],
    [undefined, /not a string \(undefined\)/],
    [{ href: 'http://x' }, /not a string \(object\)/],
    ['', /empty/],
    ['not a url', /whitespace/],
    ['example.com/fw.bin', /not a valid absolute URL/],
    ['http://', /not a valid absolute URL/],
    ['file:///etc/passwd', /scheme "file" is not supported/],
    ['data:text/plain,hello', /scheme "data"/],
    ['javascript:alert(1)', /scheme "javascript"/],
    ['gopher://example.com/1', /scheme "gopher"/],
    ['sftp://example.com/fw', /scheme "sftp"/],
    ['ftps:///fw.bin', /no host/],
    ['http://example.com/fw\u0000.bin', /control characters/],
    ['http://example.com/fw\n.bin', /control characters/],
    ['http://example.com/fw\u007f', /control characters/],
    ['http://example.com/f w.bin', /whitespace/],
    ['http://example.com/fw.bin\u00a0', /whitespace/],
    ['http://example.com/\u2028', /whitespace/],
  ])('rejects %j', (loc, reason) => {
    const r = checkUrl(loc, SCHEMES);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('rejects locations longer than the limit and accepts one at the limit', () => {
    const base = 'https://example.com/';
    const atLimit = base + 'a'.repeat(MAX_URL_LENGTH - base.length);
    expect(atLimit.length).toBe(2048);
    expect(checkUrl(atLimit, SCHEMES).ok).toBe(true);
    const r = checkUrl(atLimit + 'a', SCHEMES);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/longer than 2048/);
  });

  it('rejects only schemes outside the allowed list', () => {
    expect(checkUrl('ftp://example.com/fw', ['https']).ok).toBe(false);
    expect(checkUrl('https://example.com/fw', ['https']).ok).toBe(true);
  });

  it('accepts shell metacharacters (no shell runs) and logs them redacted', () => {
    const w = warnings();
    const loc = 'https://bob:hunter2@example.com/fw;rm -rf$(id)`x`.bin?token=abc';
    // whitespace is rejected before; use a version without spaces
    const r = checkUrl(loc.replace(' ', ''), SCHEMES, w.log);
    expect(r.ok).toBe(true);
    expect(w.lines).toHaveLength(1);
    const logged = JSON.stringify(w.lines);
    expect(logged).toMatch(/shell metacharacters/);
    expect(logged).not.toMatch(/hunter2|bob|abc/);
  });

  it('does not warn for ordinary locations', () => {
    const w = warnings();
    checkUrl('https://example.com/a/fw-1.0_b.raucb?v=2&x=y', SCHEMES, w.log);
    expect(w.lines).toHaveLength(0);
  });

  it('never puts credentials into the redacted form, also for rejected input', () => {
    for (const loc of [
      'https://bob:hunter2@example.com/fw',
      'gopher://bob:hunter2@example.com/fw',
      'https://bob:hunter2@example.com/f w',
      'http://bob:hunter2@exa mple.com/?password=hunter2',
      'nonsense://bob:hunter2@/x',
    ]) {
      const r = checkUrl(loc, SCHEMES);
      expect(r.redacted, loc).not.toMatch(/hunter2|bob/);
    }
  });
});

describe('redactUrl', () => {
  it('strips user info and keeps scheme, host, port and path', () => {
    expect(redactUrl('ftp://bob:s%40cret@files.example.com:2121/a/fw.bin')).toBe('ftp://files.example.com:2121/a/fw.bin');
    expect(redactUrl(new URL('https://bob@example.com/x'))).toBe('https://example.com/x');
  });

  it('masks secret-looking query values and keeps the others', () => {
    expect(
      redactUrl('https://s3.example.com/fw.bin?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA&version=3&access_token=t0k&apiKey=k&sig=s&password=p&auth=a&secret=z'),
    ).toBe(
      'https://s3.example.com/fw.bin?X-Amz-Signature=***&X-Amz-Credential=***&version=3&access_token=***&apiKey=***&sig=***&password=***&auth=***&secret=***',
    );
  });

  it('drops the fragment', () => {
    expect(redactUrl('https://example.com/x#token=abc')).toBe('https://example.com/x');
  });

  it('does not echo opaque payloads', () => {
    expect(redactUrl('data:text/plain;base64,c2VjcmV0')).toBe('data:…');
    expect(redactUrl('javascript:alert(document.cookie)')).toBe('javascript:…');
  });

  it('redacts strings the URL parser refuses', () => {
    const r = redactUrl('http://bob:hunter2@exa mple.com/fw?token=abc&v=1#frag');
    expect(r).toBe('http://exa mple.com/fw?token=***&v=1');
    expect(redactUrl('x\u0000y')).toBe('x?y');
    expect(redactUrl('h'.repeat(5000)).length).toBeLessThan(300);
  });
});

describe('credentialsFromUrl', () => {
  it('decodes percent-encoded user and password', () => {
    expect(credentialsFromUrl(new URL('ftp://a%40b.c:p%3Aw%2Fd@h/x'))).toEqual({ user: 'a@b.c', password: 'p:w/d' });
  });
  it('gives an empty password when only a user is present', () => {
    expect(credentialsFromUrl(new URL('ftp://anonymous@h/x'))).toEqual({ user: 'anonymous', password: '' });
  });
  it('is undefined without user info', () => {
    expect(credentialsFromUrl(new URL('https://h/x'))).toBeUndefined();
  });
  it('keeps malformed escapes as they are', () => {
    expect(credentialsFromUrl(new URL('ftp://u%zz:p%@h/x'))).toEqual({ user: 'u%zz', password: 'p%' });
  });
});
