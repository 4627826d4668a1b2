/**
 * Upload of one local file to a remote location: HTTP(S) PUT or POST (multipart/form-data) and
 * FTP / FTPS (passive mode; TLS mode as core/net/ftp.ts reads the URL). Streams from disk (bounded memory), retries with a
 * fixed interval, and classifies failures into the OCPP log status values.
 *
 * Credentials come from the URL's user info (HTTP basic auth, FTP login) and are never logged or
 * returned: every reason text is built from the redacted URL.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { Readable } from 'node:stream';
import { ftpAccessOptions, isFtpError, newFtpClient, trustedCa } from './ftp.js';
import { credentialsFromUrl, redactUrl } from './url.js';
import type { TlsOptions, UploadFailure, UploadOptions, UploadResult } from './types.js';

export const UPLOAD_SCHEMES = ['http', 'https', 'ftp', 'ftps'] as const;

const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

interface AttemptFailure {
  ok: false;
  failure: UploadFailure | 'aborted';
  reason: string;
  /** worth another attempt */
  retry: boolean;
}
type AttemptResult = { ok: true; bytes: number; remote: string } | AttemptFailure;

/** The URL the file goes to: `fileName` appended when the location ends with '/'. */
export function uploadTarget(url: URL, fileName: string): URL {
  const target = new URL(url.href);
  if (target.pathname.endsWith('/')) target.pathname += encodeURIComponent(fileName);
  return target;
}

/**
 * Upload `opts.file` to `opts.url`. Never rejects: every outcome is a result. `attempts` is the
 * total number of tries; PermissionDenied, BadMessage (unknown host) and NotSupportedOperation end
 * the loop at once, other failures are retried after `retryIntervalMs`.
 */
export async function upload(opts: UploadOptions): Promise<UploadResult> {
  const scheme = opts.url.protocol.replace(/:$/, '').toLowerCase();
  if (!(UPLOAD_SCHEMES as readonly string[]).includes(scheme)) {
    return { ok: false, failure: 'NotSupportedOperation', reason: `scheme "${scheme}" is not supported for uploads` };
  }
  const target = uploadTarget(opts.url, opts.fileName);
  const attempts = Math.max(1, Math.floor(opts.attempts || 1));
  let last: AttemptFailure = { ok: false, failure: 'UploadFailure', reason: 'no attempt made', retry: false };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (opts.signal.aborted) return { ok: false, failure: 'aborted', reason: 'aborted' };
    opts.onAttempt?.(attempt);
    let r: AttemptResult;
    try {
      r = scheme === 'http' || scheme === 'https' ? await httpAttempt(target, opts) : await ftpAttempt(target, opts);
    } catch (err) {
      r = { ok: false, failure: 'UploadFailure', reason: errText(err, target), retry: true };
    }
    if (r.ok) return r;
    if (opts.signal.aborted || r.failure === 'aborted') return { ok: false, failure: 'aborted', reason: 'aborted' };
    last = r;
    if (!r.retry || attempt === attempts) break;
    if (!(await sleep(opts.retryIntervalMs, opts.signal))) return { ok: false, failure: 'aborted', reason: 'aborted' };
  }
  return { ok: false, failure: last.failure, reason: last.reason };
}

// ---------------------------------------------------------------------------
// HTTP(S)
// ---------------------------------------------------------------------------

async function httpAttempt(target: URL, opts: UploadOptions): Promise<AttemptResult> {
  const size = (await fsp.stat(opts.file)).size;
  const method = opts.method ?? 'PUT';
  const headers: Record<string, string> = {};
  let preamble = Buffer.alloc(0);
  let epilogue = Buffer.alloc(0);
  const contentType = contentTypeOf(opts.fileName);
  if (method === 'POST') {
    const boundary = `----everest-system-${randomBytes(12).toString('hex')}`;
    const quoted = opts.fileName.replace(/["\\\r\n]/g, '_');
    preamble = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quoted}"\r\n` +
        `Content-Type: ${contentType}\r\n\r\n`,
    );
    epilogue = Buffer.from(`\r\n--${boundary}--\r\n`);
    headers['content-type'] = `multipart/form-data; boundary=${boundary}`;
  } else {
    headers['content-type'] = contentType;
  }
  headers['content-length'] = String(preamble.length + size + epilogue.length);
  const creds = credentialsFromUrl(target);
  if (creds) headers.authorization = `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString('base64')}`;

  const isHttps = target.protocol === 'https:';
  const mod = isHttps ? https : http;
  const hostname = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const requestOptions: https.RequestOptions = {
    method,
    hostname,
    port: target.port || (isHttps ? 443 : 80),
    path: `${target.pathname}${target.search}`,
    headers,
    signal: opts.signal,
    ...(isHttps ? tlsRequestOptions(opts.tls) : {}),
  };
  const idle = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const redacted = redactUrl(target);

  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const done = (r: AttemptResult) => {
      if (settled) return;
      settled = true;
      body.destroy();
      resolve(r);
    };
    const body = Readable.from(bodyChunks(preamble, opts.file, epilogue));
    const req = mod.request(requestOptions, (res) => {
      const status = res.statusCode ?? 0;
      // drain and discard the answer body
      res.resume();
      res.on('error', () => {});
      if (status >= 200 && status < 300) {
        res.on('end', () => done({ ok: true, bytes: size, remote: redacted }));
        res.on('close', () => done({ ok: true, bytes: size, remote: redacted }));
        return;
      }
      const reason = `HTTP ${status} from ${redacted}`;
      if (status === 401 || status === 403) done({ ok: false, failure: 'PermissionDenied', reason, retry: false });
      else if (status === 405 || status === 501) done({ ok: false, failure: 'NotSupportedOperation', reason, retry: false });
      else done({ ok: false, failure: 'UploadFailure', reason, retry: true });
    });
    req.setTimeout(idle, () => req.destroy(new Error(`no progress for ${idle} ms`)));
    req.on('error', (err) => done(classifyNetError(err, target)));
    body.on('error', (err) => {
      req.destroy();
      done({ ok: false, failure: 'UploadFailure', reason: `reading ${opts.file}: ${errText(err, target)}`, retry: false });
    });
    body.pipe(req);
  });
}

async function* bodyChunks(preamble: Buffer, file: string, epilogue: Buffer): AsyncGenerator<Buffer> {
  if (preamble.length) yield preamble;
  const rs = fs.createReadStream(file, { highWaterMark: 64 * 1024 });
  try {
    for await (const chunk of rs) yield chunk as Buffer;
  } finally {
    rs.destroy();
  }
  if (epilogue.length) yield epilogue;
}

function tlsRequestOptions(tlsOpts: TlsOptions | undefined): https.RequestOptions {
  const out: https.RequestOptions = {};
  const ca = trustedCa(tlsOpts);
  if (ca) out.ca = ca;
  if (tlsOpts?.rejectUnauthorized === false) out.rejectUnauthorized = false;
  return out;
}

function classifyNetError(err: unknown, target: URL): AttemptFailure {
  const code = (err as { code?: string }).code;
  const reason = errText(err, target);
  if ((err as { name?: string }).name === 'AbortError' || code === 'ABORT_ERR') {
    return { ok: false, failure: 'aborted', reason: 'aborted', retry: false };
  }
  if (code === 'ENOTFOUND') return { ok: false, failure: 'BadMessage', reason: `unknown host ${target.hostname}`, retry: false };
  return { ok: false, failure: 'UploadFailure', reason, retry: true };
}

// ---------------------------------------------------------------------------
// FTP / FTPS
// ---------------------------------------------------------------------------

async function ftpAttempt(target: URL, opts: UploadOptions): Promise<AttemptResult> {
  const client = await newFtpClient(opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
  const onAbort = () => client.close();
  opts.signal.addEventListener('abort', onAbort, { once: true });
  const redacted = redactUrl(target);
  // path relative to the login directory (RFC 1738); '%2F' at the start makes it absolute
  const remote = safeDecode(target.pathname.replace(/^\//, ''));
  try {
    await client.access(ftpAccessOptions(target, opts.tls));
    const size = (await fsp.stat(opts.file)).size;
    const rs = fs.createReadStream(opts.file, { highWaterMark: 64 * 1024 });
    try {
      await client.uploadFrom(rs, remote);
    } finally {
      rs.destroy();
    }
    return { ok: true, bytes: size, remote: redacted };
  } catch (err) {
    if (opts.signal.aborted) return { ok: false, failure: 'aborted', reason: 'aborted', retry: false };
    if (isFtpError(err)) {
      const reason = `FTP ${err.code} from ${redacted}: ${scrub(err.message, target)}`;
      if (err.code === 530) return { ok: false, failure: 'PermissionDenied', reason, retry: false };
      if (err.code === 502 || err.code === 504) return { ok: false, failure: 'NotSupportedOperation', reason, retry: false };
      return { ok: false, failure: 'UploadFailure', reason, retry: true };
    }
    return classifyNetError(err, target);
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    client.close();
  }
}

// ---------------------------------------------------------------------------

function contentTypeOf(name: string): string {
  if (/\.(tar\.gz|tgz|gz)$/i.test(name)) return 'application/gzip';
  if (/\.zip$/i.test(name)) return 'application/zip';
  if (/\.(log|txt)$/i.test(name)) return 'text/plain';
  return 'application/octet-stream';
}

/** Error text with any credential of `target` removed. */
function errText(err: unknown, target: URL): string {
  const e = err as { code?: string; message?: string };
  const msg = scrub(e?.message ?? String(err), target);
  return e?.code && !msg.includes(e.code) ? `${e.code}: ${msg}` : msg;
}

function scrub(text: string, target: URL): string {
  let out = text;
  const creds = credentialsFromUrl(target);
  for (const s of [target.password, target.username, creds?.password, creds?.user]) {
    if (s && s.length >= 1) out = out.split(s).join('***');
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Wait `ms`; false when `signal` aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
