/**
 * Log archive: a .tar.gz assembled on disk with bounded memory.
 *
 * Each entry is compressed once, while it is collected, into its own gzip member (content plus
 * tar padding); its tar header, known only when the content has ended, is a second tiny member.
 * A gzip file may consist of several members (RFC 1952 §2.2; gzip, GNU tar, Python and Node read
 * them as one stream), so the archive is the concatenation of header and content members, newest
 * entry first, followed by the manifest and the end-of-archive blocks. That makes the size cap
 * exact and cheap: an entry that does not fit is left out (or only its newest part kept), and
 * everything older is dropped, which MANIFEST.json says.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { LogSink } from '../../adapters/log-source/types.js';
import type { Redactor } from './redact.js';

export const MANIFEST_NAME = 'MANIFEST.json';

export interface StagedEntry {
  /** path inside the archive */
  name: string;
  /** the source that added it */
  source: string;
  mtime: Date;
  /** uncompressed bytes of the content */
  size: number;
  /** gzip member of content + tar padding */
  file: string;
  /** gzip member of the tar header */
  header: Buffer;
  /** bytes this entry adds to the archive */
  bytes: number;
  /** bytes dropped from the start of this entry to fit the size cap */
  truncatedBytes?: number;
}

export interface DroppedEntry {
  name: string;
  source: string;
  mtime: string;
  size: number;
  reason: string;
}

export interface PackResult {
  bytes: number;
  included: StagedEntry[];
  dropped: DroppedEntry[];
}

export interface ArchiveOptions {
  /** working directory for the staged members (created; removed by dispose()) */
  dir: string;
  redactor?: Redactor;
  level?: number;
  signal: AbortSignal;
}

/** Collects entries from log sources into compressed members on disk. */
export class ArchiveBuilder {
  readonly entries: StagedEntry[] = [];
  readonly notes: { source: string; message: string }[] = [];
  private seq = 0;
  private readonly names = new Set<string>([MANIFEST_NAME]);

  constructor(private readonly opts: ArchiveOptions) {}

  async init(): Promise<void> {
    await fsp.mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
  }

  /** A sink for one source; names are placed under `prefix/`. */
  sink(source: string, prefix: string): LogSink {
    return {
      add: async (entry) => {
        const name = this.uniqueName(`${prefix}/${sanitizeEntryName(entry.name)}`);
        // reserve the name first: concurrent adds of the same name get distinct names
        const content =
          typeof entry.content === 'string' || Buffer.isBuffer(entry.content)
            ? Readable.from([Buffer.from(entry.content)])
            : entry.content;
        const staged = await this.stage(name, source, content, entry.mtime ?? new Date());
        this.entries.push(staged);
      },
      note: (message) => {
        this.notes.push({ source, message });
      },
    };
  }

  private uniqueName(name: string): string {
    let candidate = name;
    for (let i = 2; this.names.has(candidate); i++) {
      const m = /^(.*?)(\.[^./]*)?$/.exec(name)!;
      candidate = `${m[1]}~${i}${m[2] ?? ''}`;
    }
    this.names.add(candidate);
    return candidate;
  }

  private async stage(name: string, source: string, content: Readable, mtime: Date): Promise<StagedEntry> {
    const file = path.join(this.opts.dir, `${++this.seq}.gz`);
    const body = new TarBody();
    const stages: (NodeJS.ReadableStream | NodeJS.WritableStream | Transform)[] = [content];
    if (this.opts.redactor) stages.push(this.opts.redactor.stream());
    try {
      await pipeline(
        [...stages, body, zlib.createGzip({ level: this.opts.level ?? 6 }), fs.createWriteStream(file, { mode: 0o600 })] as unknown as [
          NodeJS.ReadableStream,
          NodeJS.WritableStream,
        ],
        { signal: this.opts.signal },
      );
    } catch (err) {
      content.destroy();
      await fsp.rm(file, { force: true });
      throw err;
    }
    return this.finishEntry({ name, source, mtime, size: body.size, file });
  }

  private async finishEntry(e: { name: string; source: string; mtime: Date; size: number; file: string }): Promise<StagedEntry> {
    const header = zlib.gzipSync(await tarHeader(e.name, e.size, e.mtime));
    const memberBytes = (await fsp.stat(e.file)).size;
    return { ...e, header, bytes: header.length + memberBytes };
  }

  /**
   * A new member holding only the last `keep` bytes of `e` (from the next line start on),
   * marked as truncated.
   */
  private async tail(e: StagedEntry, keep: number): Promise<StagedEntry> {
    const file = path.join(this.opts.dir, `${++this.seq}.gz`);
    const skip = Math.max(0, e.size - keep);
    const body = new TarBody();
    const streams = [
      fs.createReadStream(e.file),
      zlib.createGunzip(),
      new SliceFromLine(skip, e.size),
      body,
      zlib.createGzip({ level: this.opts.level ?? 6 }),
      fs.createWriteStream(file, { mode: 0o600 }),
    ];
    await pipeline(streams as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream], { signal: this.opts.signal });
    const staged = await this.finishEntry({ name: e.name, source: e.source, mtime: e.mtime, size: body.size, file });
    return { ...staged, truncatedBytes: e.size - body.size };
  }

  /**
   * Write the archive to `out`: entries newest first while they fit `maxBytes` (the manifest's
   * room reserved), then MANIFEST.json built by `manifest(result)`, then the end-of-archive blocks.
   */
  async pack(
    out: string,
    maxBytes: number | undefined,
    manifest: (r: { included: StagedEntry[]; dropped: DroppedEntry[] }) => unknown,
  ): Promise<PackResult> {
    const sorted = [...this.entries].sort((a, b) => b.mtime.getTime() - a.mtime.getTime() || a.name.localeCompare(b.name));
    // room kept for the manifest member: generous for its JSON (a few hundred bytes per entry, compressed)
    const reserve = maxBytes === undefined ? 0 : 2048 + 160 * sorted.length + 64 * this.notes.length;
    const budget = maxBytes === undefined ? Infinity : maxBytes - reserve;
    const included: StagedEntry[] = [];
    const dropped: DroppedEntry[] = [];
    const ws = fs.createWriteStream(out, { mode: 0o600 });
    const wsDone = new Promise<void>((resolve, reject) => {
      ws.on('close', resolve);
      ws.on('error', reject);
    });
    let total = 0;
    let full = false;
    const drop = (e: StagedEntry, reason: string) =>
      dropped.push({ name: e.name, source: e.source, mtime: e.mtime.toISOString(), size: e.size, reason });
    try {
      for (const e of sorted) {
        this.opts.signal.throwIfAborted();
        if (full) {
          drop(e, 'older than the content kept within maxArchiveBytes');
          continue;
        }
        if (total + e.bytes <= budget) {
          await appendEntry(ws, e);
          total += e.bytes;
          included.push(e);
          continue;
        }
        full = true;
        // keep the newest part of this entry if a useful amount fits
        const room = budget - total - e.header.length - 64;
        let kept: StagedEntry | undefined;
        if (room >= 1024 && e.size > 0) {
          const ratio = Math.max(e.bytes / e.size, 0.001);
          let keep = Math.floor((room / ratio) * 0.9);
          for (let i = 0; i < 4 && keep > 0; i++) {
            const t = await this.tail(e, keep);
            if (total + t.bytes <= budget) {
              kept = t;
              break;
            }
            await fsp.rm(t.file, { force: true });
            keep = Math.floor(keep * 0.6);
          }
        }
        if (kept && kept.size > 0) {
          await appendEntry(ws, kept);
          total += kept.bytes;
          included.push(kept);
        } else {
          if (kept) await fsp.rm(kept.file, { force: true });
          drop(e, 'does not fit within maxArchiveBytes');
        }
      }
      const text = JSON.stringify(manifest({ included, dropped }), null, 2) + '\n';
      // notes quote tool output and paths: redacted like the logs
      const json = Buffer.from(this.opts.redactor ? this.opts.redactor.apply(text) : text);
      const last = Buffer.concat([await tarHeader(MANIFEST_NAME, json.length, new Date()), json, padding(json.length), Buffer.alloc(1024)]);
      const member = zlib.gzipSync(last);
      await write(ws, member);
      total += member.length;
    } finally {
      ws.end();
      await wsDone;
    }
    return { bytes: total, included, dropped };
  }
}

async function appendEntry(ws: fs.WriteStream, e: StagedEntry): Promise<void> {
  await write(ws, e.header);
  for await (const chunk of fs.createReadStream(e.file, { highWaterMark: 256 * 1024 })) await write(ws, chunk as Buffer);
}

function write(ws: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

/** tar, loaded when the first archive is built (not at start-up) */
let tarModule: typeof import('tar') | undefined;

/** tar header block(s) for a regular file (a PAX header first when the name needs one). */
export async function tarHeader(name: string, size: number, mtime: Date): Promise<Buffer> {
  tarModule ??= await import('tar');
  const { Header, Pax } = tarModule;
  const fields = { path: name, mode: 0o644, uid: 0, gid: 0, size, mtime, type: 'File' as const, uname: 'root', gname: 'root' };
  const h = new Header(fields);
  const needPax = h.encode();
  if (!needPax) return h.block!;
  const pax = new Pax({ path: name, size, mtime }, false).encode();
  return Buffer.concat([pax, h.block!]);
}

function padding(size: number): Buffer {
  const r = size % 512;
  return Buffer.alloc(r === 0 ? 0 : 512 - r);
}

/** Counts the bytes passing through and appends the tar padding at the end. */
class TarBody extends Transform {
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    const pad = padding(this.size);
    cb(null, pad.length ? pad : undefined);
  }
}

/** Passes bytes [start of the first line at or after `skip`, `end`) of the stream. */
class SliceFromLine extends Transform {
  private pos = 0;
  private started: boolean;
  constructor(
    private readonly skip: number,
    private readonly limit: number,
  ) {
    super();
    this.started = skip === 0;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const start = this.pos;
    this.pos += chunk.length;
    let c = chunk.subarray(0, Math.max(0, Math.min(chunk.length, this.limit - start)));
    let offset = start;
    if (!this.started) {
      if (this.pos <= this.skip) return cb();
      if (offset < this.skip) {
        c = c.subarray(this.skip - offset);
        offset = this.skip;
      }
      // the byte before `skip` decides whether we are at a line start; simpler: cut after the next '\n'
      const nl = c.indexOf(0x0a);
      if (nl < 0) return cb();
      c = c.subarray(nl + 1);
      this.started = true;
    }
    cb(null, c.length ? c : undefined);
  }
}

/** A safe relative path inside the archive: no '..', no leading '/', printable characters only. */
export function sanitizeEntryName(name: string): string {
  const parts = name
    .split(/[\\/]+/)
    .map((p) => p.replace(/[^A-Za-z0-9._@+=,~-]/g, '_'))
    .filter((p) => p !== '' && p !== '.' && p !== '..');
  const joined = parts.join('/');
  return joined === '' ? 'unnamed' : joined.slice(-200);
}
