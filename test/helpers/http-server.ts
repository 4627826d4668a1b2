/**
 * A real `node:http` / `node:https` server on 127.0.0.1 (port 0) for download and upload tests.
 *
 * Serves files with Content-Length, Accept-Ranges and single-range 206 answers, receives uploads
 * (PUT raw body, POST multipart/form-data) onto disk, records every request, and injects faults
 * per route (throttle, connection drop after N bytes, error status for the first K requests,
 * delay, basic auth, ignoring Range).
 *
 * @example
 *   const srv = await startHttpServer({ https: true });
 *   srv.serve('/fw.bin', Buffer.from('firmware'), { dropAfterBytes: 3 });
 *   srv.route('/logs/', { auth: { user: 'u', password: 'p' } });   // uploads under /logs/
 *   // download `${srv.url}/fw.bin` trusting srv.caPem, upload with PUT `${srv.url}/logs/x.tar.gz`
 *   expect(srv.requests.map((r) => r.headers.range)).toEqual([undefined, 'bytes=3-']);
 *   expect(srv.uploads[0]?.name).toBe('x.tar.gz');
 *   await srv.close();
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { execa } from 'execa';

/** Fault injection for one route (exact path, or a prefix when the route ends with '/'). */
export interface RouteFaults {
  /** send the body at about this many bytes per second */
  throttleBytesPerSec?: number;
  /** downloads: destroy the connection after sending this many body bytes; uploads: after receiving them */
  dropAfterBytes?: number;
  /** how many responses get dropped (default 1; Infinity = every time) */
  dropTimes?: number;
  /** answer with this status (and a short text body) ... */
  failStatus?: number;
  /** ... for the first `failCount` requests (default 1; Infinity = always) */
  failCount?: number;
  /** wait this long before answering */
  delayMs?: number;
  /** require HTTP basic auth; 401 otherwise */
  auth?: { user: string; password: string };
  /** answer with a redirect to this location (absolute or relative), status 302 unless given */
  redirectTo?: string;
  redirectStatus?: number;
  /** answer 200 with the full body even when a Range is asked for */
  ignoreRange?: boolean;
  /** send no Content-Length (chunked encoding), so the size is unknown until the end */
  noContentLength?: boolean;
}

export type Body = Buffer | { file: string };

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** status sent (set when the head was written) */
  status?: number;
}

export interface UploadPart {
  headers: Record<string, string>;
  /** form field name */
  field?: string;
  filename?: string;
  /** file on disk holding the bytes of this part */
  file: string;
  size: number;
}

export interface ReceivedUpload {
  method: string;
  /** request path (no query) */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** multipart: filename of the first file part; PUT: last path segment */
  name: string;
  /** multipart: Content-Type of the first file part; PUT: request Content-Type */
  contentType?: string;
  /** multipart: Content-Disposition of the first file part; PUT: request header */
  contentDisposition?: string;
  /** file on disk holding the uploaded bytes (the first file part for multipart) */
  file: string;
  size: number;
  /** every multipart part, in order */
  parts?: UploadPart[];
  bytes(): Buffer;
}

export interface TestHttpServer {
  /** origin, e.g. http://127.0.0.1:41234 (no trailing slash) */
  url: string;
  port: number;
  /** PEM of the CA that signed the https certificate (https only) */
  caPem?: string;
  /** every request received, in order */
  requests: RecordedRequest[];
  /** every upload stored, in order */
  uploads: ReceivedUpload[];
  /** serve `body` at `path` (and optionally set its faults) */
  serve(path: string, body: Body, faults?: RouteFaults): void;
  /** set (replace) the faults of a route; '/x/' matches every path under /x/ */
  route(path: string, faults: RouteFaults): void;
  /** requests to one path */
  requestsTo(path: string): RecordedRequest[];
  /** wait until `predicate` holds for the request log */
  waitForRequest(predicate: (r: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

export interface HttpServerOptions {
  https?: boolean;
  files?: Record<string, Body>;
  routes?: Record<string, RouteFaults>;
}

export interface TestCertificates {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/**
 * A throw-away CA and a server certificate for localhost / 127.0.0.1 signed by it (EC P-256, so it
 * takes a few ms). Written under `dir`, returned as PEM text.
 */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  await fsp.mkdir(dir, { recursive: true });
  const p = (n: string) => path.join(dir, n);
  await execa('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '30', '-subj', '/CN=Test CA',
    '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await execa('openssl', [
    'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=localhost',
  ]);
  await fsp.writeFile(p('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await execa('openssl', [
    'x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('server.crt'), '-days', '30', '-extfile', p('san.ext'),
  ]);
  const [caPem, certPem, keyPem] = await Promise.all(
    ['ca.crt', 'server.crt', 'server.key'].map((n) => fsp.readFile(p(n), 'utf8')),
  );
  return { caPem: caPem!, certPem: certPem!, keyPem: keyPem! };
}

interface RouteState {
  faults: RouteFaults;
  requests: number;
  drops: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startHttpServer(opts: HttpServerOptions = {}): Promise<TestHttpServer> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'http-srv-'));
  const uploadDir = path.join(dir, 'uploads');
  await fsp.mkdir(uploadDir);
  const files = new Map<string, Body>(Object.entries(opts.files ?? {}));
  const routes = new Map<string, RouteState>();
  const requests: RecordedRequest[] = [];
  const uploads: ReceivedUpload[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  let uploadSeq = 0;

  const setRoute = (p: string, faults: RouteFaults) => routes.set(p, { faults, requests: 0, drops: 0 });
  for (const [p, f] of Object.entries(opts.routes ?? {})) setRoute(p, f);

  const routeFor = (p: string): RouteState | undefined => {
    const exact = routes.get(p);
    if (exact) return exact;
    let best: [string, RouteState] | undefined;
    for (const [k, v] of routes) {
      if (k.endsWith('/') && p.startsWith(k) && (!best || k.length > best[0].length)) best = [k, v];
    }
    return best?.[1];
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    requests.push(rec);
    for (const w of waiters) w();
    const origWriteHead = res.writeHead.bind(res) as (...a: unknown[]) => http.ServerResponse;
    (res as unknown as { writeHead: (...a: unknown[]) => http.ServerResponse }).writeHead = (...a: unknown[]) => {
      rec.status = a[0] as number;
      return origWriteHead(...a);
    };
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      } else {
        res.destroy();
      }
    });
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    const route = routeFor(pathname);
    const faults = route?.faults ?? {};
    const n = route ? ++route.requests : 1;
    if (faults.delayMs) await sleep(faults.delayMs);
    if (faults.auth) {
      const want = 'Basic ' + Buffer.from(`${faults.auth.user}:${faults.auth.password}`).toString('base64');
      if (req.headers.authorization !== want) {
        req.resume();
        res.writeHead(401, { 'www-authenticate': 'Basic realm="test"', 'content-type': 'text/plain' });
        res.end('unauthorized');
        return;
      }
    }
    if (faults.redirectTo) {
      req.resume();
      res.writeHead(faults.redirectStatus ?? 302, { location: faults.redirectTo, 'content-type': 'text/plain' });
      res.end('moved');
      return;
    }
    if (faults.failStatus && n <= (faults.failCount ?? 1)) {
      req.resume();
      res.writeHead(faults.failStatus, { 'content-type': 'text/plain' });
      res.end(`injected ${faults.failStatus}`);
      return;
    }
    const shouldDrop = () =>
      route !== undefined && faults.dropAfterBytes !== undefined && route.drops < (faults.dropTimes ?? 1);

    if (req.method === 'GET' || req.method === 'HEAD') {
      const body = files.get(pathname);
      if (!body) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
        return;
      }
      const size = Buffer.isBuffer(body) ? body.length : (await fsp.stat(body.file)).size;
      let start = 0;
      let end = size - 1;
      let status = 200;
      const headers: http.OutgoingHttpHeaders = { 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
      const range = req.headers.range;
      if (range && !faults.ignoreRange) {
        const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
        if (m && (m[1] !== '' || m[2] !== '')) {
          if (m[1] === '') {
            start = Math.max(0, size - Number(m[2]));
          } else {
            start = Number(m[1]);
            if (m[2] !== '') end = Math.min(end, Number(m[2]));
          }
          if (start >= size || start > end) {
            res.writeHead(416, { 'content-range': `bytes */${size}` });
            res.end();
            return;
          }
          status = 206;
          headers['content-range'] = `bytes ${start}-${end}/${size}`;
        }
      }
      const length = size === 0 ? 0 : end - start + 1;
      if (!faults.noContentLength) headers['content-length'] = String(length);
      res.writeHead(status, headers);
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        return;
      }
      const dropAt = shouldDrop() ? faults.dropAfterBytes! : undefined;
      if (dropAt !== undefined) route!.drops++;
      await sendBody(res, body, start, end, faults.throttleBytesPerSec, dropAt);
      return;
    }

    if (req.method === 'PUT' || req.method === 'POST') {
      const id = ++uploadSeq;
      const raw = path.join(uploadDir, `${id}.raw`);
      const dropAt = shouldDrop() ? faults.dropAfterBytes! : undefined;
      if (dropAt !== undefined) route!.drops++;
      const out = fs.createWriteStream(raw);
      let received = 0;
      const dropped = await new Promise<boolean>((resolve, reject) => {
        req.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (dropAt !== undefined && received >= dropAt) {
            req.socket.destroy();
            out.end(() => resolve(true));
            return;
          }
          if (!out.write(chunk)) {
            req.pause();
            out.once('drain', () => req.resume());
          }
        });
        req.on('end', () => out.end(() => resolve(false)));
        req.on('error', (err) => (dropAt !== undefined ? out.end(() => resolve(true)) : reject(err)));
        req.on('aborted', () => out.end(() => resolve(true)));
      });
      if (dropped) return;
      const upload = await storeUpload(req, pathname, raw, id);
      if (!upload) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end('bad multipart body');
        return;
      }
      uploads.push(upload);
      res.writeHead(req.method === 'PUT' ? 201 : 200, { 'content-type': 'text/plain' });
      res.end('stored');
      return;
    }
    req.resume();
    res.writeHead(405, { allow: 'GET, HEAD, PUT, POST' });
    res.end();
  };

  const storeUpload = async (
    req: http.IncomingMessage,
    pathname: string,
    raw: string,
    id: number,
  ): Promise<ReceivedUpload | undefined> => {
    const ctype = req.headers['content-type'] ?? '';
    const base = {
      method: req.method ?? '',
      path: pathname,
      headers: req.headers,
    };
    const boundary = /^multipart\/form-data;.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(ctype);
    if (req.method === 'POST' && boundary) {
      const parts = await parseMultipart(await fsp.readFile(raw), boundary[1] ?? boundary[2]!, uploadDir, id);
      if (!parts) return undefined;
      const first = parts.find((p) => p.filename !== undefined) ?? parts[0];
      if (!first) return undefined;
      return {
        ...base,
        name: first.filename ?? first.field ?? '',
        contentType: first.headers['content-type'],
        contentDisposition: first.headers['content-disposition'],
        file: first.file,
        size: first.size,
        parts,
        bytes: () => fs.readFileSync(first.file),
      };
    }
    const size = (await fsp.stat(raw)).size;
    return {
      ...base,
      name: decodeURIComponent(pathname.split('/').pop() ?? ''),
      contentType: req.headers['content-type'],
      contentDisposition: req.headers['content-disposition'],
      file: raw,
      size,
      bytes: () => fs.readFileSync(raw),
    };
  };

  const sendBody = async (
    res: http.ServerResponse,
    body: Body,
    start: number,
    end: number,
    rate: number | undefined,
    dropAt: number | undefined,
  ) => {
    const stream = Buffer.isBuffer(body)
      ? bufferChunks(body.subarray(start, end + 1))
      : fs.createReadStream(body.file, { start, end, highWaterMark: 64 * 1024 });
    const chunkMax = rate ? Math.max(1, Math.min(64 * 1024, Math.floor(rate / 20))) : Infinity;
    const t0 = Date.now();
    let sent = 0;
    const write = (buf: Buffer) =>
      new Promise<void>((resolve, reject) => {
        if (res.destroyed) return reject(new Error('client gone'));
        res.write(buf, (err) => (err ? reject(err) : resolve()));
      });
    try {
      for await (const c of stream as AsyncIterable<Buffer>) {
        let chunk = c;
        while (chunk.length > 0) {
          let piece = chunk.subarray(0, Math.min(chunk.length, chunkMax));
          if (dropAt !== undefined && sent + piece.length >= dropAt) {
            piece = piece.subarray(0, dropAt - sent);
            if (piece.length > 0) await write(piece);
            sent += piece.length;
            res.destroy();
            return;
          }
          await write(piece);
          sent += piece.length;
          chunk = chunk.subarray(piece.length);
          if (rate) {
            const due = t0 + (sent / rate) * 1000;
            const wait = due - Date.now();
            if (wait > 0) await sleep(wait);
          }
        }
      }
      res.end();
    } catch {
      res.destroy();
    } finally {
      if (!Buffer.isBuffer(body)) (stream as fs.ReadStream).destroy();
    }
  };

  let caPem: string | undefined;
  let server: http.Server | https.Server;
  if (opts.https) {
    const certs = await makeTestCertificates(path.join(dir, 'pki'));
    caPem = certs.caPem;
    server = https.createServer({ cert: certs.certPem, key: certs.keyPem }, handler);
  } else {
    server = http.createServer(handler);
  }
  server.keepAliveTimeout = 1000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  let closed = false;
  return {
    url: `${opts.https ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    caPem,
    requests,
    uploads,
    serve(p, body, faults) {
      files.set(p, body);
      if (faults) setRoute(p, faults);
    },
    route: setRoute,
    requestsTo: (p) => requests.filter((r) => new URL(r.url, 'http://x').pathname === p),
    waitForRequest(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = requests.find(predicate);
          if (hit) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error('timed out waiting for an HTTP request'));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await done;
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

async function* bufferChunks(buf: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += 64 * 1024) yield buf.subarray(i, i + 64 * 1024);
}

/** Minimal multipart/form-data parser (test helper; the body is read whole). */
async function parseMultipart(body: Buffer, boundary: string, dir: string, id: number): Promise<UploadPart[] | undefined> {
  const delim = Buffer.from(`--${boundary}`);
  const parts: UploadPart[] = [];
  let pos = body.indexOf(delim);
  if (pos < 0) return undefined;
  let idx = 0;
  for (;;) {
    pos += delim.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break;
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') return undefined;
    pos += 2;
    const headEnd = body.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) return undefined;
    const headers: Record<string, string> = {};
    for (const line of body.subarray(pos, headEnd).toString('utf8').split('\r\n')) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), headEnd + 4);
    if (next < 0) return undefined;
    const content = body.subarray(headEnd + 4, next);
    const file = path.join(dir, `${id}.part${idx++}`);
    await fsp.writeFile(file, content);
    const cd = headers['content-disposition'] ?? '';
    const field = /\bname="([^"]*)"/.exec(cd)?.[1];
    const filename = /\bfilename="([^"]*)"/.exec(cd)?.[1];
    parts.push({ headers, field, filename, file, size: content.length });
    pos = next + 2;
  }
  return parts;
}
