import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { upload } from '../../core/net/upload.js';
import type { UploadOptions } from '../../core/net/types.js';
import { startHttpServer, type TestHttpServer } from '../helpers/http-server.js';
import { startFtpServer } from '../helpers/ftp-server.js';

let dir: string;
let file: string;
const content = Buffer.from(Array.from({ length: 3000 }, (_, i) => `line ${i}\n`).join(''));

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'upload-test-'));
  file = path.join(dir, 'logs.tar.gz');
  await fsp.writeFile(file, content);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function opts(url: string, extra: Partial<UploadOptions> = {}): UploadOptions {
  return {
    url: new URL(url),
    file,
    fileName: 'station_DiagnosticsLog_7.tar.gz',
    signal: new AbortController().signal,
    attempts: 1,
    retryIntervalMs: 10,
    idleTimeoutMs: 5000,
    ...extra,
  };
}

describe('HTTP upload', () => {
  let srv: TestHttpServer;
  beforeEach(async () => {
    srv = await startHttpServer();
  });
  afterEach(async () => {
    await srv.close();
  });

  it('PUTs the file, appending the file name to a location ending in /', async () => {
    const r = await upload(opts(`${srv.url}/logs/`));
    expect(r).toMatchObject({ ok: true, bytes: content.length });
    expect(srv.uploads).toHaveLength(1);
    const up = srv.uploads[0]!;
    expect(up.method).toBe('PUT');
    expect(up.path).toBe('/logs/station_DiagnosticsLog_7.tar.gz');
    expect(up.contentType).toBe('application/gzip');
    expect(up.bytes().equals(content)).toBe(true);
  });

  it('PUTs to the exact location when it names a file', async () => {
    const r = await upload(opts(`${srv.url}/incoming/custom.bin?x=1`));
    expect(r.ok).toBe(true);
    expect(srv.uploads[0]!.path).toBe('/incoming/custom.bin');
  });

  it('POSTs multipart/form-data with Content-Type and a Content-Disposition naming the file', async () => {
    const r = await upload(opts(`${srv.url}/post/`, { method: 'POST' }));
    expect(r.ok).toBe(true);
    const up = srv.uploads[0]!;
    expect(up.method).toBe('POST');
    expect(up.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(up.contentDisposition).toContain('filename="station_DiagnosticsLog_7.tar.gz"');
    expect(up.contentType).toBe('application/gzip');
    expect(up.name).toBe('station_DiagnosticsLog_7.tar.gz');
    expect(up.bytes().equals(content)).toBe(true);
  });

  it('retries after a 500 and succeeds on the second attempt', async () => {
    srv.route('/logs/', { failStatus: 500, failCount: 1 });
    const seen: number[] = [];
    const r = await upload(opts(`${srv.url}/logs/`, { attempts: 3, onAttempt: (a) => seen.push(a) }));
    expect(r.ok).toBe(true);
    expect(seen).toEqual([1, 2]);
    expect(srv.requests.map((q) => q.status)).toEqual([500, 201]);
  });

  it('retries after the connection drops mid-body', async () => {
    srv.route('/logs/', { dropAfterBytes: 1000, dropTimes: 1 });
    const r = await upload(opts(`${srv.url}/logs/`, { attempts: 2 }));
    expect(r.ok).toBe(true);
    expect(srv.uploads[0]!.bytes().equals(content)).toBe(true);
  });

  it('gives up with UploadFailure after the last attempt', async () => {
    srv.route('/logs/', { failStatus: 503, failCount: Infinity });
    const r = await upload(opts(`${srv.url}/logs/`, { attempts: 3 }));
    expect(r).toMatchObject({ ok: false, failure: 'UploadFailure' });
    expect(srv.requests).toHaveLength(3);
  });

  it('reports PermissionDenied for 403 without further attempts', async () => {
    srv.route('/logs/', { failStatus: 403, failCount: Infinity });
    const r = await upload(opts(`${srv.url}/logs/`, { attempts: 3 }));
    expect(r).toMatchObject({ ok: false, failure: 'PermissionDenied' });
    expect(srv.requests).toHaveLength(1);
  });

  it('sends basic auth from the URL, and never puts the password in a reason', async () => {
    srv.route('/auth/', { auth: { user: 'op', password: 'pa:ss@word' } });
    const good = await upload(opts(`http://op:${encodeURIComponent('pa:ss@word')}@127.0.0.1:${srv.port}/auth/`));
    expect(good.ok).toBe(true);
    const bad = await upload(opts(`http://op:wrongsecret@127.0.0.1:${srv.port}/auth/`));
    expect(bad).toMatchObject({ ok: false, failure: 'PermissionDenied' });
    expect(JSON.stringify(bad)).not.toContain('wrongsecret');
  });

  it('reports BadMessage for an unknown host', async () => {
    const r = await upload(opts('http://no-such-host.invalid/logs/', { attempts: 3 }));
    expect(r).toMatchObject({ ok: false, failure: 'BadMessage' });
  });

  it('reports NotSupportedOperation for a scheme it cannot upload to', async () => {
    const r = await upload(opts('file:///etc/passwd'));
    expect(r).toMatchObject({ ok: false, failure: 'NotSupportedOperation' });
  });

  it('stops at once when aborted while waiting for the server', async () => {
    srv.route('/slow/', { delayMs: 5000 });
    const ac = new AbortController();
    const p = upload(opts(`${srv.url}/slow/`, { signal: ac.signal, attempts: 3 }));
    await srv.waitForRequest((q) => q.url.startsWith('/slow/'));
    const t0 = Date.now();
    ac.abort();
    const r = await p;
    expect(r).toMatchObject({ ok: false, failure: 'aborted' });
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('stops at once when aborted between attempts', async () => {
    srv.route('/logs/', { failStatus: 500, failCount: Infinity });
    const ac = new AbortController();
    const p = upload(opts(`${srv.url}/logs/`, { signal: ac.signal, attempts: 5, retryIntervalMs: 30_000 }));
    await srv.waitForRequest((q) => q.url.startsWith('/logs/'));
    const t0 = Date.now();
    ac.abort();
    expect(await p).toMatchObject({ ok: false, failure: 'aborted' });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(srv.requests).toHaveLength(1);
  });
});

describe('HTTPS upload', () => {
  it('uploads trusting an extra CA, and fails without it', async () => {
    const srv = await startHttpServer({ https: true });
    try {
      const ok = await upload(opts(`${srv.url}/logs/`, { tls: { ca: [srv.caPem!] } }));
      expect(ok.ok).toBe(true);
      const untrusted = await upload(opts(`${srv.url}/logs/`));
      expect(untrusted).toMatchObject({ ok: false, failure: 'UploadFailure' });
      expect(srv.uploads).toHaveLength(1);
    } finally {
      await srv.close();
    }
  });
});

describe('FTP upload', () => {
  it('stores the file under the login directory with the URL credentials', async () => {
    const ftp = await startFtpServer({ user: 'op', password: 'f:tp@pw' });
    try {
      await fsp.mkdir(path.join(ftp.root, 'in'));
      const url = `ftp://op:${encodeURIComponent('f:tp@pw')}@127.0.0.1:${ftp.port}/in/`;
      const r = await upload(opts(url));
      expect(r).toMatchObject({ ok: true, bytes: content.length });
      expect(r.ok && r.remote).not.toContain('f:tp@pw');
      const stored = await fsp.readFile(path.join(ftp.root, 'in', 'station_DiagnosticsLog_7.tar.gz'));
      expect(stored.equals(content)).toBe(true);
    } finally {
      await ftp.close();
    }
  });

  it('reports PermissionDenied for a refused login (530), without the password', async () => {
    const ftp = await startFtpServer();
    try {
      const r = await upload(opts(`ftp://alice:wrongpass@127.0.0.1:${ftp.port}/`, { attempts: 3 }));
      expect(r).toMatchObject({ ok: false, failure: 'PermissionDenied' });
      expect(JSON.stringify(r)).not.toContain('wrongpass');
      expect(ftp.logins).toEqual(['alice']);
    } finally {
      await ftp.close();
    }
  });

  it('uploads over FTPS (ftps:// on a port other than 990 is AUTH TLS) and verifies the server', async () => {
    const ftp = await startFtpServer({ tls: 'explicit' });
    const location = `${ftp.url.replace(/^ftp:/, 'ftps:')}/`;
    try {
      const untrusted = await upload(opts(location, { attempts: 1 }));
      expect(untrusted).toMatchObject({ ok: false, failure: 'UploadFailure' });
      const r = await upload(opts(location, { tls: { ca: [ftp.caPem!] } }));
      expect(r.ok).toBe(true);
      const stored = await fsp.readFile(path.join(ftp.root, 'station_DiagnosticsLog_7.tar.gz'));
      expect(stored.equals(content)).toBe(true);
    } finally {
      await ftp.close();
    }
  });
});
