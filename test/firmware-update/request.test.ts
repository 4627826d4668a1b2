import { describe, expect, it } from 'vitest';
import { checkRequest } from '../../plugins/firmware-update/request.js';

const policy = { allowedSchemes: ['http', 'https', 'ftp', 'ftps'], defaultAttempts: 3, defaultRetryIntervalS: 60 };

describe('checkRequest', () => {
  it('normalises a full request', () => {
    const r = checkRequest(
      {
        location: 'https://user:pw@fw.example.com/images/fw.bin?token=abc',
        request_id: 17,
        retries: 4,
        retry_interval_s: 5,
        retrieve_timestamp: '2030-01-01T10:00:00Z',
        install_timestamp: '2030-01-01T11:00:00.5+01:00',
        signature: 'AAAA',
        signing_certificate: 'PEM',
      },
      policy,
    );
    expect(r).toMatchObject({
      ok: true,
      request: {
        requestId: 17,
        attempts: 4,
        retryIntervalS: 5,
        retrieveAt: Date.parse('2030-01-01T10:00:00Z'),
        installAt: Date.parse('2030-01-01T10:00:00.5Z'),
        signed: { signature: 'AAAA', certificate: 'PEM' },
      },
    });
    if (r.ok) expect(r.request.redacted).not.toMatch(/pw|abc/);
  });

  it('applies the defaults and reads retries 0 as one attempt', () => {
    expect(checkRequest({ location: 'ftp://h/fw', request_id: -1 }, policy)).toMatchObject({
      ok: true, request: { attempts: 3, retryIntervalS: 60, signed: undefined },
    });
    expect(checkRequest({ location: 'ftp://h/fw', request_id: 1, retries: 0 }, policy)).toMatchObject({ ok: true, request: { attempts: 1 } });
  });

  it.each([
    ['no object', 'x', /object/],
    ['no request_id', { location: 'http://h/f' }, /request_id/],
    ['fractional request_id', { location: 'http://h/f', request_id: 1.5 }, /request_id/],
    ['file scheme', { location: 'file:///etc/passwd', request_id: 1 }, /scheme/],
    ['javascript scheme', { location: 'javascript:alert(1)', request_id: 1 }, /scheme/],
    ['scheme not configured', { location: 'sftp://h/f', request_id: 1 }, /scheme/],
    ['backquotes', { location: 'http://h/`reboot`', request_id: 1 }, /characters/],
    ['a pipe', { location: 'http://h/f|sh', request_id: 1 }, /characters/],
    ['a newline', { location: 'http://h/f\nreboot', request_id: 1 }, /control/],
    ['a space', { location: 'http://h/f; reboot', request_id: 1 }, /whitespace/],
    ['command substitution in the host', { location: 'http://$(reboot)/f', request_id: 1 }, /host/],
    ['over-long', { location: `http://h/${'a'.repeat(5000)}`, request_id: 1 }, /longer/],
    ['negative retries', { location: 'http://h/f', request_id: 1, retries: -2 }, /retries/],
    ['bad timestamp', { location: 'http://h/f', request_id: 1, install_timestamp: 'tomorrow' }, /install_timestamp/],
    ['signature without certificate', { location: 'http://h/f', request_id: 1, signature: 'AAAA' }, /together/],
  ])('rejects %s', (_name, payload, reason) => {
    const r = checkRequest(payload, policy);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('never puts credentials into the redacted location of a rejected request', () => {
    const r = checkRequest({ location: 'file://admin:hunter2@host/x', request_id: 1 }, policy);
    expect(r).toMatchObject({ ok: false });
    expect(JSON.stringify(r)).not.toMatch(/hunter2|admin/);
  });
});
