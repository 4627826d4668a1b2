/**
 * Streamed download over http(s) and ftp(s) with resume, retries and a SHA-256 computed on the fly.
 *
 * Behaviour (see core/net/types.ts for the contract):
 * - The body goes straight to `dest`; memory stays flat whatever the size. The file is fsynced
 *   and truncated to the received length at the end.
 * - Resume: with `resume` and an existing `dest`, its bytes are hashed first and the transfer
 *   continues with `Range: bytes=N-` (HTTP; the answer must be 206 with a matching Content-Range,
 *   else the file is truncated and the download restarts from 0) or `REST N` (FTP).
 *   A 416 whose Content-Range says the file has exactly N bytes means it is already complete.
 * - A connection that breaks after bytes arrived emits `paused` (with the wait), and the next
 *   attempt emits `resumed` when bytes flow again. Such an attempt does not count against
 *   `attempts`; attempts that made no progress do. The wait between attempts is `retryIntervalMs`.
 * - Free space (statfs of the directory of `dest`) must hold the remaining bytes plus
 *   `reserveBytes` once the size is known (Content-Length / Content-Range / FTP SIZE), else
 *   `no-space` before any body byte is written. `maxBytes` gives `too-large`, checked against the
 *   announced size and again while streaming.
 * - Failure classes: 404/410 and FTP 550 -> not-found; 401/403 and FTP 530/532 -> permission-denied;
 *   DNS, connect, TLS, reset and idle timeouts -> network; other answers -> protocol.
 *   not-found and permission-denied end the download at once (the same request gets the same
 *   answer; the caller may start a new download later). network and protocol are retried until
 *   the attempts are used up. no-space, too-large, local write errors and aborts end it at once.
 * - ftp:// and ftps:// are reached as core/net/ftp.ts says (ftps:// without a port or on 990:
 *   implicit TLS; on another port: explicit AUTH TLS). Certificates are verified against the bundled roots plus `tls.ca` unless
 *   `tls.rejectUnauthorized` is false. FTP paths are relative to the login directory (RFC 1738);
 *   `%2F` at the start makes them absolute.
 * - Credentials come from the URL's user info; they never appear in reasons or log lines.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, rmSync, statfsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { FTPError } from 'basic-ftp';
import type { DownloadEvent, DownloadFailure, DownloadOptions, DownloadResult, TlsOptions } from './types.js';
import { ftpAccessOptions, isFtpError, newFtpClient, trustedCa } from './ftp.js';
import { credentialsFromUrl, redactUrl } from './url.js';

const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 5;
const PROGRESS_EVERY_MS = 250;
const USER_AGENT = 'everest-system-client';

/** Failure raised inside one attempt. `final` ends the download regardless of the attempts left. */
class TransferError extends Error {
  constructor(
    readonly failure: DownloadFailure,
    message: string,
    readonly final = false,
  ) {
    super(message);
  }
}

/** Mutable state of one download across attempts. */
interface State {
  opts: DownloadOptions;
  have: number;
  hash: Hash;
  total?: number;
  /** set after a pause; the next bytes emit `resumed` */
  pendingResume: boolean;
  lastProgressAt: number;
  emit(e: DownloadEvent): void;
}

export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const emit = (e: DownloadEvent) => {
    try {
      opts.onEvent?.(e);
    } catch {
      /* a listener's failure must not break the transfer */
    }
  };
  const st: State = { opts, have: 0, hash: createHash('sha256'), pendingResume: false, lastProgressAt: 0, emit };
  const scheme = opts.url.protocol;
  if (!['http:', 'https:', 'ftp:', 'ftps:'].includes(scheme)) {
    return { ok: false, failure: 'protocol', reason: `unsupported scheme ${scheme}`, bytes: 0 };
  }
  if (opts.signal.aborted) return aborted(st);

  try {
    if (opts.resume) await hashExisting(st);
    else await fsp.rm(opts.dest, { force: true });
  } catch (err) {
    return { ok: false, failure: 'protocol', reason: `cannot prepare ${opts.dest}: ${errText(err)}`, bytes: 0 };
  }

  const attempts = Number.isFinite(opts.attempts) ? Math.max(1, Math.floor(opts.attempts)) : 1;
  let used = 0;
  let tries = 0;
  for (;;) {
    if (opts.signal.aborted) return aborted(st);
    tries++;
    emit({ type: 'attempt', attempt: tries, resumeFrom: st.have });
    const before = st.have;
    try {
      if (scheme === 'http:' || scheme === 'https:') await httpOnce(st, opts.url, 0);
      else await ftpOnce(st);
      await finish(st);
      return { ok: true, bytes: st.have, sha256: st.hash.copy().digest('hex') };
    } catch (err) {
      if (opts.signal.aborted) return aborted(st);
      const te = classify(err);
      if (te.final) return { ok: false, failure: te.failure, reason: te.message, bytes: st.have };
      const progressed = st.have > before;
      if (!progressed) used++;
      if (used >= attempts) return { ok: false, failure: te.failure, reason: te.message, bytes: st.have };
      const wait = Number.isFinite(opts.retryIntervalMs) ? Math.max(0, opts.retryIntervalMs) : 0;
      if (st.have > 0) {
        emit({ type: 'paused', bytes: st.have, inMs: wait, reason: te.message });
        st.pendingResume = true;
      }
      if (!(await sleep(wait, opts.signal))) return aborted(st);
    }
  }
}

function aborted(st: State): DownloadResult {
  return { ok: false, failure: 'aborted', reason: 'download aborted', bytes: st.have };
}

async function hashExisting(st: State): Promise<void> {
  let stat;
  try {
    stat = await fsp.stat(st.opts.dest);
  } catch {
    return;
  }
  if (!stat.isFile()) throw new Error('destination is not a regular file');
  for await (const chunk of createReadStream(st.opts.dest, { highWaterMark: 1 << 20 })) {
    st.hash.update(chunk as Buffer);
    st.have += (chunk as Buffer).length;
  }
}

/** Synchronous on purpose: it runs between an HTTP response's arrival and reading its body. */
function restartFromZero(st: State): void {
  st.have = 0;
  st.hash = createHash('sha256');
  st.total = undefined;
  rmSync(st.opts.dest, { force: true });
}

async function finish(st: State): Promise<void> {
  const fh = await fsp.open(st.opts.dest, st.have === 0 ? 'w' : 'r+', 0o600);
  try {
    await fh.truncate(st.have);
    await fh.sync();
  } finally {
    await fh.close();
  }
  st.emit({ type: 'progress', bytes: st.have, total: st.total ?? st.have });
}

/**
 * Checks size limits and free space for the rest of the transfer; throws a final TransferError.
 * Synchronous on purpose: an HTTP body must get its listeners in the same tick as the response,
 * or bytes that arrive together with a connection close are lost.
 */
function checkSpace(st: State, total: number | undefined): void {
  st.total = total;
  const { maxBytes, reserveBytes = 0 } = st.opts;
  if (total === undefined) return;
  if (maxBytes !== undefined && total > maxBytes) {
    throw new TransferError('too-large', `file is ${total} bytes, more than the allowed ${maxBytes}`, true);
  }
  const remaining = Math.max(0, total - st.have);
  let fsStat;
  try {
    fsStat = statfsSync(path.dirname(path.resolve(st.opts.dest)));
  } catch (err) {
    throw localError(err);
  }
  const free = Number(fsStat.bavail) * Number(fsStat.bsize);
  if (remaining + reserveBytes > free) {
    throw new TransferError(
      'no-space',
      `not enough space: ${remaining} bytes to write + ${reserveBytes} reserved > ${free} free`,
      true,
    );
  }
}

/** Sink writing at `have` into dest, hashing, reporting progress and enforcing maxBytes. */
class FileSink extends Writable {
  private fh?: fsp.FileHandle;
  constructor(private readonly st: State) {
    super({ highWaterMark: 256 * 1024 });
    this.on('error', () => {}); // surfaced through sinkError()/the transfer's promise
  }
  private inflight: Promise<void> = Promise.resolve();
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.track(this.writeChunks([chunk]), cb);
  }
  /** buffered chunks go to the file in one writev */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.track(this.writeChunks(chunks.map((c) => c.chunk)), cb);
  }
  private track(p: Promise<void>, cb: (err?: Error | null) => void): void {
    this.inflight = p.catch(() => {});
    p.then(() => cb(), cb);
  }
  /**
   * End of an attempt that failed: write what was received and buffered (unless the sink itself
   * failed), then close, so `have` and the hash match the file before the next attempt.
   * Returns the sink's own failure, if any.
   */
  async stop(): Promise<TransferError | undefined> {
    if (!sinkError(this) && !this.destroyed && !this.writableFinished) {
      await new Promise<void>((resolve) => {
        this.once('error', () => resolve());
        this.end(() => resolve());
      });
    }
    this.destroy();
    await this.inflight;
    await this.closeFile().catch(() => {});
    return sinkError(this);
  }
  private async writeChunks(chunks: Buffer[]): Promise<void> {
    const st = this.st;
    const { maxBytes } = st.opts;
    const length = chunks.reduce((n, c) => n + c.length, 0);
    if (maxBytes !== undefined && st.have + length > maxBytes) {
      throw new TransferError('too-large', `file is larger than the allowed ${maxBytes} bytes`, true);
    }
    if (!this.fh) {
      try {
        this.fh = await fsp.open(st.opts.dest, st.have === 0 ? 'w' : 'r+', 0o600);
      } catch (err) {
        throw localError(err);
      }
    }
    if (st.pendingResume) {
      st.pendingResume = false;
      st.emit({ type: 'resumed', bytes: st.have });
    }
    try {
      let off = (await this.fh.writev(chunks, st.have)).bytesWritten;
      if (off < length) {
        // short write (rare on regular files): finish the rest piece by piece
        const rest = Buffer.concat(chunks).subarray(off);
        for (let done = 0; done < rest.length; ) {
          const { bytesWritten } = await this.fh.write(rest, done, rest.length - done, st.have + off + done);
          done += bytesWritten;
        }
        off = length;
      }
    } catch (err) {
      throw localError(err);
    }
    for (const c of chunks) st.hash.update(c);
    st.have += length;
    const now = Date.now();
    if (now - st.lastProgressAt >= PROGRESS_EVERY_MS) {
      st.lastProgressAt = now;
      st.emit({ type: 'progress', bytes: st.have, total: st.total });
    }
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.closeFile().then(() => cb(), cb);
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.closeFile().then(() => cb(err), () => cb(err));
  }
  async closeFile(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

function localError(err: unknown): TransferError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new TransferError('no-space', `disk full while writing: ${code}`, true);
  return new TransferError('protocol', `cannot write the destination: ${errText(err)}`, true);
}

// ---------------------------------------------------------------------------
// HTTP(S)
// ---------------------------------------------------------------------------

function httpOnce(st: State, url: URL, redirects: number): Promise<void> {
  const { opts } = st;
  const from = st.have;
  const isHttps = url.protocol === 'https:';
  const creds = credentialsFromUrl(url);
  const headers: http.OutgoingHttpHeaders = {
    'user-agent': USER_AGENT,
    'accept-encoding': 'identity',
    accept: '*/*',
  };
  if (from > 0) headers.range = `bytes=${from}-`;
  if (creds) headers.authorization = 'Basic ' + Buffer.from(`${creds.user}:${creds.password}`).toString('base64');
  const reqOpts: https.RequestOptions = {
    method: 'GET',
    protocol: url.protocol,
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port || undefined,
    path: url.pathname + url.search,
    headers,
    signal: opts.signal,
    agent: false,
  };
  if (isHttps) {
    reqOpts.ca = trustedCa(opts.tls);
    reqOpts.rejectUnauthorized = opts.tls?.rejectUnauthorized !== false;
    reqOpts.servername = /^[\d.]+$|:/.test(reqOpts.hostname!) ? undefined : reqOpts.hostname!;
  }
  const idle = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;

  return new Promise<void>((resolve, reject) => {
    const req = (isHttps ? https : http).request(reqOpts);
    req.setTimeout(idle, () => req.destroy(new TransferError('network', `no data for ${idle} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      res.on('error', () => {}); // handled through the listeners in handleResponse
      handleResponse(st, url, res, redirects).then(resolve, (err) => {
        res.destroy();
        req.destroy();
        reject(err);
      });
    });
    req.end();
  });
}

async function handleResponse(st: State, url: URL, res: http.IncomingMessage, redirects: number): Promise<void> {
  const status = res.statusCode ?? 0;
  const from = st.have;
  const where = redactUrl(url);
  if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
    res.resume();
    if (redirects >= MAX_REDIRECTS) throw new TransferError('protocol', `too many redirects at ${where}`);
    let next: URL;
    try {
      next = new URL(res.headers.location, url);
    } catch {
      throw new TransferError('protocol', `bad redirect location from ${where}`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new TransferError('protocol', `redirect to unsupported scheme ${next.protocol}`, true);
    }
    // user info only travels to the same origin
    if (next.origin !== url.origin) {
      next.username = '';
      next.password = '';
    } else if (!next.username && url.username) {
      next.username = url.username;
      next.password = url.password;
    }
    return httpOnce(st, next, redirects + 1);
  }
  if (status === 416 && from > 0) {
    res.resume();
    const m = /^bytes \*\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
    if (m && Number(m[1]) === from) {
      checkSpace(st, from);
      return; // already complete
    }
    restartFromZero(st);
    return httpOnce(st, url, redirects);
  }
  if (status === 404 || status === 410) {
    res.resume();
    throw new TransferError('not-found', `${where} answered ${status}`, true);
  }
  if (status === 401 || status === 403) {
    res.resume();
    throw new TransferError('permission-denied', `${where} answered ${status}`, true);
  }
  if (status !== 200 && status !== 206) {
    res.resume();
    throw new TransferError('protocol', `${where} answered ${status}`);
  }
  const len = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
  let total: number | undefined;
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== from) {
      // not the range we asked for: start over without Range
      res.resume();
      restartFromZero(st);
      return httpOnce(st, url, redirects);
    }
    total = m[3] !== '*' ? Number(m[3]) : len !== undefined ? from + len : undefined;
  } else {
    if (from > 0) restartFromZero(st); // the server ignored Range
    total = len;
  }
  checkSpace(st, total !== undefined && Number.isFinite(total) ? total : undefined);
  const sink = new FileSink(st);
  try {
    // 'data' events (not async iteration): bytes that arrived just before the connection broke
    // reach the sink instead of being dropped with the response's read buffer
    await new Promise<void>((resolve, reject) => {
      sink.once('error', reject);
      res.on('error', reject);
      res.on('close', () => {
        if (!res.complete) reject(new TransferError('network', 'connection closed before the end of the body'));
      });
      res.on('data', (chunk: Buffer) => {
        if (!sink.write(chunk)) {
          res.pause();
          sink.once('drain', () => res.resume());
        }
      });
      res.on('end', () => {
        if (res.complete) sink.end(() => resolve());
      });
    });
  } catch (err) {
    throw (await sink.stop()) ?? err;
  }
  if (st.total !== undefined && st.have !== st.total) {
    throw new TransferError('network', `body ended at ${st.have} of ${st.total} bytes`);
  }
}

function sinkError(sink: Writable): TransferError | undefined {
  const e = (sink as unknown as { errored?: Error | null }).errored;
  return e instanceof TransferError ? e : undefined;
}

// ---------------------------------------------------------------------------
// FTP(S)
// ---------------------------------------------------------------------------

async function ftpOnce(st: State): Promise<void> {
  const { opts } = st;
  const url = opts.url;
  const remote = decodeURIComponent(url.pathname).replace(/^\//, '');
  if (remote === '' || remote.endsWith('/')) throw new TransferError('protocol', 'ftp location names no file', true);
  const where = redactUrl(url);

  const client = await newFtpClient(opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
  const onAbort = () => client.close();
  opts.signal.addEventListener('abort', onAbort, { once: true });
  try {
    await client.access(ftpAccessOptions(url, opts.tls));
    let total: number | undefined;
    try {
      total = await client.size(remote);
    } catch (err) {
      if (isFtpError(err) && err.code === 550) throw new TransferError('not-found', `${where}: ${ftpText(err)}`, true);
      if (!isFtpError(err)) throw err;
      total = undefined; // SIZE not supported
    }
    if (st.have > 0 && total !== undefined && st.have > total) restartFromZero(st);
    if (total !== undefined && st.have === total) {
      checkSpace(st, total);
      return; // already complete
    }
    checkSpace(st, total);
    const sink = new FileSink(st);
    try {
      await client.downloadTo(sink, remote, st.have);
    } catch (err) {
      const se = await sink.stop();
      if (se) throw se;
      if (isFtpError(err) && st.have > 0 && err.code >= 500 && err.code <= 504 && /REST/i.test(err.message)) {
        restartFromZero(st); // server refuses REST: start over
        throw new TransferError('protocol', `${where}: server refused to resume`);
      }
      throw err;
    }
    if (total !== undefined && st.have !== total) {
      throw new TransferError('network', `transfer ended at ${st.have} of ${total} bytes`);
    }
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    client.close();
  }
}

function ftpText(err: FTPError): string {
  return err.message.replace(/\s+/g, ' ').trim();
}

// ---------------------------------------------------------------------------
// errors and waiting
// ---------------------------------------------------------------------------

const NETWORK_CODES = new Set([
  'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT',
  'EPIPE', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENOTCONN', 'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET', 'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

function classify(err: unknown): TransferError {
  if (err instanceof TransferError) return err;
  if (isFtpError(err)) {
    const text = ftpText(err);
    if (err.code === 530 || err.code === 532) return new TransferError('permission-denied', `login refused: ${text}`, true);
    if (err.code === 550) return new TransferError('not-found', text, true);
    if (err.code === 421 || err.code === 425 || err.code === 426) return new TransferError('network', text);
    return new TransferError('protocol', `server answered ${text}`);
  }
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = e?.code ?? '';
  const msg = errText(err);
  if (NETWORK_CODES.has(code)) return new TransferError('network', msg);
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i.test(code)) return new TransferError('network', `TLS: ${msg}`);
  if (/timeout|timed out|socket hang up|aborted|closed|ECONNRESET|disconnected/i.test(msg)) return new TransferError('network', msg);
  return new TransferError('protocol', msg);
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = e instanceof Error ? `${e.code ? `${e.code}: ` : ''}${e.message}` : String(err);
  // node puts URLs with user info into some messages; strip any user info that slipped in
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1');
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
