/**
 * An in-process FTP / FTPS server (ftp-srv) on 127.0.0.1 (port 0, passive mode on 127.0.0.1) with
 * one user, a per-test root directory and fault hooks.
 *
 * @example
 *   const ftp = await startFtpServer({ tls: 'explicit', faults: { abortRetrAfterBytes: 1000 } });
 *   await fs.writeFile(path.join(ftp.root, 'fw.bin'), data);
 *   // download `${ftp.url}/fw.bin` (credentials are in ftp.url) trusting ftp.caPem
 *   expect(ftp.retrOffsets).toEqual([0, expect.any(Number)]);   // second RETR resumed via REST
 *   await ftp.close();
 */
import * as fsp from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { FileSystem, FtpSrv } from 'ftp-srv';
import { makeTestCertificates } from './http-server.js';

export interface FtpFaults {
  /** fail RETR (551, data connection closed) after sending this many bytes ... */
  abortRetrAfterBytes?: number;
  /** ... this many times (default 1; Infinity = always) */
  abortTimes?: number;
  /** answer every login with 530 */
  refuseLogin?: boolean;
}

export interface FtpServerOptions {
  user?: string;
  password?: string;
  /** root directory; a temp dir (removed by close()) when omitted */
  root?: string;
  /** 'explicit' = AUTH TLS on ftp://, 'implicit' = TLS from the first byte (ftps:// URL) */
  tls?: 'explicit' | 'implicit';
  faults?: FtpFaults;
}

export interface TestFtpServer {
  /** base URL with credentials and no trailing slash, e.g. ftp://alice:s3cret@127.0.0.1:40123 */
  url: string;
  port: number;
  root: string;
  user: string;
  password: string;
  /** CA that signed the server certificate (tls only) */
  caPem?: string;
  /** mutable: change faults between transfers */
  faults: FtpFaults;
  /** start offset (REST) of every RETR, in order */
  retrOffsets: number[];
  /** login attempts (user names), in order */
  logins: string[];
  close(): Promise<void>;
}

interface BunyanLike {
  trace(...a: unknown[]): void;
  debug(...a: unknown[]): void;
  info(...a: unknown[]): void;
  warn(...a: unknown[]): void;
  error(...a: unknown[]): void;
  fatal(...a: unknown[]): void;
  child(...a: unknown[]): BunyanLike;
}
/** ftp-srv needs a bunyan-style logger (it crashes without one); tests want it silent. */
const quietLog: BunyanLike = {
  trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {},
  child: () => quietLog,
};

/** Passes `limit` bytes through, then fails the stream (ftp-srv then closes the data connection and replies 551). */
class AbortAfter extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const room = this.limit - this.seen;
    if (room <= 0) return cb(new Error('injected transfer abort'));
    if (chunk.length < room) {
      this.seen += chunk.length;
      return cb(null, chunk);
    }
    this.seen += room;
    this.push(chunk.subarray(0, room));
    // let the consumer write the last piece before the failure
    setImmediate(() => cb(new Error('injected transfer abort')));
  }
}

export async function startFtpServer(opts: FtpServerOptions = {}): Promise<TestFtpServer> {
  const user = opts.user ?? 'alice';
  const password = opts.password ?? 's3cret';
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'ftp-srv-'));
  const root = opts.root ?? path.join(tmp, 'root');
  await fsp.mkdir(root, { recursive: true });
  const faults: FtpFaults = { ...opts.faults };
  const retrOffsets: number[] = [];
  const logins: string[] = [];
  let aborts = 0;

  let tls: { key: string; cert: string } | false = false;
  let caPem: string | undefined;
  if (opts.tls) {
    const certs = await makeTestCertificates(path.join(tmp, 'pki'));
    tls = { key: certs.keyPem, cert: certs.certPem };
    caPem = certs.caPem;
  }

  class FaultyFs extends FileSystem {
    override async read(fileName: string, o: { start?: number } = {}): Promise<unknown> {
      const start = o.start ?? 0;
      retrOffsets.push(start);
      const res = (await super.read(fileName, o)) as { stream: NodeJS.ReadableStream & { path?: string }; clientPath: string };
      if (faults.abortRetrAfterBytes !== undefined && aborts < (faults.abortTimes ?? 1)) {
        aborts++;
        const t = new AbortAfter(faults.abortRetrAfterBytes);
        res.stream.on('error', (e) => t.destroy(e));
        res.stream.pipe(t);
        return { stream: t, clientPath: res.clientPath };
      }
      return res;
    }
  }

  // ftp-srv adds process signal listeners per instance; remove ours on close
  const signals = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  // pick a passive range below the ephemeral range, different per server to avoid clashes
  const pasvMin = 10_000 + Math.floor(Math.random() * 200) * 100;
  const scheme = opts.tls === 'implicit' ? 'ftps' : 'ftp';
  const srv = new FtpSrv({
    url: `${scheme}://127.0.0.1:0`,
    pasv_url: '127.0.0.1',
    pasv_min: pasvMin,
    pasv_max: pasvMin + 99,
    tls,
    log: quietLog,
  });
  const added = new Map(signals.map((s) => [s, process.listeners(s).filter((l) => !before.get(s)!.has(l))]));

  srv.on('login', ({ connection, username, password: pw }, resolve, reject) => {
    logins.push(username);
    if (faults.refuseLogin || username !== user || pw !== password) {
      reject(new Error('Bad credentials'));
      return;
    }
    resolve({ fs: new FaultyFs(connection, { root, cwd: '/' }) });
  });
  srv.on('client-error', () => {});
  await srv.listen();
  const port = ((srv as unknown as { server: { address(): AddressInfo } }).server.address()).port;

  let closed = false;
  return {
    url: `${scheme}://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    port,
    root,
    user,
    password,
    caPem,
    faults,
    retrOffsets,
    logins,
    async close() {
      if (closed) return;
      closed = true;
      await srv.close();
      for (const s of signals) for (const l of added.get(s)!) process.removeListener(s, l as () => void);
      await fsp.rm(tmp, { recursive: true, force: true });
    },
  };
}
