/**
 * Persistent JSON documents with atomic writes: write a temp file, fsync it, rename it over
 * the old one, fsync the directory. Files are 0600 and folders 0700. A document that cannot be
 * parsed is moved aside (`<key>.json.corrupt-<time>`) and reported, never a crash loop.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import type { Logger, StateStore } from './api.js';

const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkKey(key: string): void {
  if (!KEY.test(key) || key.includes('..')) throw new Error(`invalid state key ${JSON.stringify(key)}`);
}

/** Writes `data` to `file` atomically (temp + fsync + rename + directory fsync), mode 0600. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(file);
  // unique per write: concurrent writers of one file never share a temp file
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_TRUNC, 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  const dirHandle = await fs.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

export class FileStateStore implements StateStore {
  readonly dir: string;
  readonly #log: Logger;
  #ready: Promise<void> | undefined;
  /** serialises writes per key so a later set always wins */
  readonly #queues = new Map<string, Promise<void>>();

  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.#log = log;
  }

  #ensureDir(): Promise<void> {
    this.#ready ??= (async () => {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await fs.chmod(this.dir, 0o700);
      // leftovers of writes interrupted by a crash
      for (const name of await fs.readdir(this.dir)) {
        if (name.startsWith('.') && name.endsWith('.tmp')) await fs.rm(path.join(this.dir, name), { force: true });
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
    await this.#queues.get(key);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await fs.rename(file, aside).catch(() => undefined);
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
    const text = `${JSON.stringify(value, null, 1)}\n`;
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      await this.#ensureDir();
      await writeFileAtomic(file, text);
    });
    const settled = next.catch(() => undefined);
    this.#queues.set(key, settled);
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
    });
    return next;
  }

  async delete(key: string): Promise<void> {
    const file = this.#file(key);
    await this.#ensureDir();
    await this.#queues.get(key);
    await fs.rm(file, { force: true });
  }

  async keys(): Promise<string[]> {
    await this.#ensureDir();
    return (await fs.readdir(this.dir))
      .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
      .map((n) => n.slice(0, -'.json'.length))
      .sort();
  }
}
