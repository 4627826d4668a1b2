/**
 * Persistent JSON documents with atomic writes: write a temp file, fsync it, rename it over
 * the old one, fsync the directory. Files are 0600 and folders 0700. A document that cannot be
 * parsed is moved aside (`<key>.json.corrupt-<time>`) and reported, never a crash loop.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger, StateStore } from './api.js';

const fsp = fs.promises;
const fsync = promisify(fs.fsync);

const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkKey(key: string): void {
  if (!KEY.test(key) || key.includes('..')) throw new Error(`invalid state key ${JSON.stringify(key)}`);
}

/**
 * Writes `data` to `file` atomically (temp + fsync + rename + directory fsync), mode 0600.
 *
 * The two fsyncs, which wait for the disk, run on libuv's thread pool. The calls around them
 * (open, write of a small document into the page cache, close, rename) take microseconds and are
 * made directly: each asynchronous call is a round trip through the event loop, and under load
 * eight of them made one state write take 20-30 ms and queued requests behind it.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(file);
  // unique per write: concurrent writers of one file never share a temp file
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_TRUNC, 0o600);
  try {
    fs.writeFileSync(fd, data);
    await fsync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  const dirFd = fs.openSync(dir, fsConstants.O_RDONLY);
  try {
    await fsync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

/** a write or a delete of one key that has not started yet; a newer one takes its place */
interface Waiting {
  content: string | null;
  done: Promise<void>;
}

/**
 * Keeps what it wrote: the daemon is the only writer of its state dir, so a key read once or
 * written is answered from memory afterwards (a fresh copy each time), without a disk read.
 * Writes of one key run one after the other; a write that has not started when a newer one of
 * the same key arrives is skipped, and both callers resolve once the newer content is on disk.
 */
export class FileStateStore implements StateStore {
  readonly dir: string;
  readonly #log: Logger;
  #ready: Promise<void> | undefined;
  /** per key: the end of its chain of writes, and the write waiting to start (if any) */
  readonly #queues = new Map<string, { tail: Promise<void>; waiting: Waiting | undefined }>();
  /** per key: its JSON text, or null when it does not exist (as far as this process knows) */
  readonly #cache = new Map<string, string | null>();
  /** per key: bumped by every write, so a read that raced one does not fill the cache */
  readonly #versions = new Map<string, number>();

  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.#log = log;
  }

  #ensureDir(): Promise<void> {
    this.#ready ??= (async () => {
      await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await fsp.chmod(this.dir, 0o700);
      // leftovers of writes interrupted by a crash
      for (const name of await fsp.readdir(this.dir)) {
        if (name.startsWith('.') && name.endsWith('.tmp')) await fsp.rm(path.join(this.dir, name), { force: true });
      }
    })();
    return this.#ready;
  }

  #file(key: string): string {
    checkKey(key);
    return path.join(this.dir, `${key}.json`);
  }

  async get<T>(key: string): Promise<T | undefined> {
    const file = this.#file(key);
    await this.#ensureDir();
    const known = this.#cache.get(key);
    if (known !== undefined) return known === null ? undefined : (JSON.parse(known) as T);
    await this.#queues.get(key)?.tail;
    const version = this.#versions.get(key) ?? 0;
    const remember = (content: string | null) => {
      if ((this.#versions.get(key) ?? 0) === version && !this.#cache.has(key)) this.#cache.set(key, content);
    };
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      remember(null);
      return undefined;
    }
    try {
      const value = JSON.parse(text) as T;
      remember(text);
      return value;
    } catch (err) {
      const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await fsp.rename(file, aside).catch(() => undefined);
      this.#log.error({ file, movedTo: aside, error: (err as Error).message }, 'state file is corrupt; moved aside and treated as absent');
      return undefined;
    }
  }

  set(key: string, value: unknown): Promise<void> {
    let file: string;
    try {
      file = this.#file(key);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(key, file, `${JSON.stringify(value, null, 1)}\n`);
  }

  delete(key: string): Promise<void> {
    let file: string;
    try {
      file = this.#file(key);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(key, file, null);
  }

  #enqueue(key: string, file: string, content: string | null): Promise<void> {
    const version = (this.#versions.get(key) ?? 0) + 1;
    this.#versions.set(key, version);
    this.#cache.set(key, content);
    const queue = this.#queues.get(key);
    if (queue?.waiting) {
      // not started yet: the newer content takes its place
      queue.waiting.content = content;
      return queue.waiting.done;
    }
    const waiting: Waiting = { content, done: undefined as unknown as Promise<void> };
    const entry = { tail: undefined as unknown as Promise<void>, waiting: waiting as Waiting | undefined };
    waiting.done = (queue?.tail ?? Promise.resolve()).then(async () => {
      if (entry.waiting === waiting) entry.waiting = undefined;
      const started = this.#versions.get(key);
      try {
        await this.#ensureDir();
        if (waiting.content === null) await fsp.rm(file, { force: true });
        else await writeFileAtomic(file, waiting.content);
      } catch (err) {
        // what is on disk is not known now: the next read goes to the disk
        if (this.#versions.get(key) === started) this.#cache.delete(key);
        throw err;
      }
    });
    entry.tail = waiting.done.catch(() => undefined);
    this.#queues.set(key, entry);
    void entry.tail.then(() => {
      if (this.#queues.get(key) === entry) this.#queues.delete(key);
    });
    return waiting.done;
  }

  async keys(): Promise<string[]> {
    await this.#ensureDir();
    const names = new Set(
      (await fsp.readdir(this.dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => n.slice(0, -'.json'.length)),
    );
    // writes and deletes not on disk yet count as done
    for (const [key, content] of this.#cache) {
      if (content === null) names.delete(key);
      else names.add(key);
    }
    return [...names].sort();
  }
}
