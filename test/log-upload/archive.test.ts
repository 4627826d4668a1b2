import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArchiveBuilder, MANIFEST_NAME, sanitizeEntryName } from '../../plugins/log-upload/archive.js';
import { makeRedactor, REDACTED } from '../../plugins/log-upload/redact.js';
import { at, extractArchive, listArchive } from './fixtures.js';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'archive-test-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const builder = (extra: Partial<ConstructorParameters<typeof ArchiveBuilder>[0]> = {}) =>
  new ArchiveBuilder({ dir: path.join(dir, 'stage'), signal: new AbortController().signal, ...extra });

/** n lines of incompressible text, numbered */
const noisyLines = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${tag} line ${String(i).padStart(5, '0')} ${randomBytes(30).toString('base64')}\n`).join('');

describe('ArchiveBuilder', () => {
  it('packs entries newest first with a manifest, readable by tar and by a plain gunzip', async () => {
    const b = builder();
    await b.init();
    const s = b.sink('files', 'files');
    await s.add({ name: '/var/log/old.log', content: 'old\n', mtime: at(0) });
    await s.add({ name: '/var/log/new.log', content: Readable.from(['new ', 'entry\n']), mtime: at(2) });
    s.note('something was skipped');
    const out = path.join(dir, 'a.tar.gz');
    const r = await b.pack(out, undefined, (x) => ({ files: x.included.map((e) => e.name), dropped: x.dropped, notes: b.notes }));
    expect(r.bytes).toBe((await fsp.stat(out)).size);
    expect(await listArchive(out)).toEqual(['files/var/log/new.log', 'files/var/log/old.log', MANIFEST_NAME]);
    const files = await extractArchive(out, path.join(dir, 'x'));
    expect(files.get('files/var/log/new.log')).toBe('new entry\n');
    expect(files.get('files/var/log/old.log')).toBe('old\n');
    const manifest = JSON.parse(files.get(MANIFEST_NAME)!);
    expect(manifest.files).toEqual(['files/var/log/new.log', 'files/var/log/old.log']);
    expect(manifest.notes).toEqual([{ source: 'files', message: 'something was skipped' }]);
    // a multi-member gzip is one stream to any gunzip
    const tar = zlib.gunzipSync(await fsp.readFile(out));
    expect(tar.length % 512).toBe(0);
    expect(tar.subarray(-1024).every((x) => x === 0)).toBe(true);
  });

  it('keeps mtimes and makes names safe and unique', async () => {
    const b = builder();
    await b.init();
    const s = b.sink('x', 'x');
    await s.add({ name: '../../etc/passwd', content: 'a\n', mtime: at(1) });
    await s.add({ name: '../../etc/passwd', content: 'b\n', mtime: at(0) });
    await s.add({ name: 'we ird;$(rm -rf).log', content: 'c\n', mtime: at(0) });
    const out = path.join(dir, 'a.tar.gz');
    await b.pack(out, undefined, () => ({}));
    const names = await listArchive(out);
    expect(names).toEqual(['x/etc/passwd', 'x/etc/passwd~2', 'x/we_ird___rm_-rf_.log', MANIFEST_NAME]);
    await extractArchive(out, path.join(dir, 'x'));
    expect((await fsp.stat(path.join(dir, 'x', 'x/etc/passwd'))).mtime.toISOString()).toBe(at(1).toISOString());
    expect(sanitizeEntryName('/a//b/../c')).toBe('a/b/c');
  });

  it('drops the oldest content first to stay under maxArchiveBytes, and says so', async () => {
    const b = builder();
    await b.init();
    const s = b.sink('files', 'files');
    const oldest = noisyLines('oldest', 2000); // ~120 kB, incompressible-ish
    const middle = noisyLines('middle', 2000);
    const newest = noisyLines('newest', 2000);
    await s.add({ name: 'oldest.log', content: oldest, mtime: at(0) });
    await s.add({ name: 'newest.log', content: newest, mtime: at(2) });
    await s.add({ name: 'middle.log', content: middle, mtime: at(1) });
    const newestBytes = b.entries.find((e) => e.name.endsWith('newest.log'))!.bytes;
    const cap = Math.floor(newestBytes * 1.5) + 4096;
    const out = path.join(dir, 'a.tar.gz');
    const r = await b.pack(out, cap, (x) => ({ included: x.included.map((e) => ({ name: e.name, truncatedBytes: e.truncatedBytes })), dropped: x.dropped }));
    expect((await fsp.stat(out)).size).toBeLessThanOrEqual(cap);
    const files = await extractArchive(out, path.join(dir, 'x'));
    expect(files.get('files/newest.log')).toBe(newest);
    // the middle file lost its start, kept its end from a line start on
    const mid = files.get('files/middle.log')!;
    expect(mid.length).toBeGreaterThan(10_000);
    expect(mid.length).toBeLessThan(middle.length);
    expect(middle.endsWith(mid)).toBe(true);
    expect(mid.startsWith('middle line ')).toBe(true);
    expect(files.has('files/oldest.log')).toBe(false);
    const manifest = JSON.parse(files.get(MANIFEST_NAME)!);
    expect(manifest.dropped).toEqual([
      expect.objectContaining({ name: 'files/oldest.log', mtime: at(0).toISOString(), size: oldest.length, reason: expect.stringMatching(/maxArchiveBytes/) }),
    ]);
    expect(manifest.included).toContainEqual({ name: 'files/middle.log', truncatedBytes: middle.length - mid.length });
    expect(r.dropped).toHaveLength(1);
  });

  it('with a cap smaller than anything, the archive holds only the manifest', async () => {
    const b = builder();
    await b.init();
    await b.sink('s', 's').add({ name: 'big.log', content: noisyLines('big', 500), mtime: at(0) });
    const out = path.join(dir, 'a.tar.gz');
    await b.pack(out, 3000, (x) => ({ dropped: x.dropped.map((d) => d.name) }));
    const files = await extractArchive(out, path.join(dir, 'x'));
    expect([...files.keys()]).toEqual([MANIFEST_NAME]);
    expect(JSON.parse(files.get(MANIFEST_NAME)!).dropped).toEqual(['s/big.log']);
  });

  it('redacts secrets line by line, even when a secret is split across chunks', async () => {
    const redactor = makeRedactor(['hunter2', { regex: 'token=[A-Za-z0-9]+', flags: 'i' }])!;
    const b = builder({ redactor });
    await b.init();
    const text = 'login password hunter2 ok\nurl?TOKEN=abc123XYZ&x=1\nplain line\n';
    // one byte per chunk: every secret is split across chunk boundaries
    await b.sink('s', 's').add({ name: 'a.log', content: Readable.from([...Buffer.from(text)].map((c) => Buffer.from([c]))), mtime: at(0) });
    const out = path.join(dir, 'a.tar.gz');
    await b.pack(out, undefined, () => ({}));
    const got = (await extractArchive(out, path.join(dir, 'x'))).get('s/a.log')!;
    expect(got).toBe(`login password ${REDACTED} ok\nurl?${REDACTED}&x=1\nplain line\n`);
  });

  it('rejects an invalid redaction regex with a clear message', () => {
    expect(() => makeRedactor([{ regex: '(unclosed' }])).toThrow(/redact\[0\] is not a valid regular expression/);
    expect(() => makeRedactor([{ regex: 'x*' }])).toThrow(/matches the empty string/);
    expect(makeRedactor([])).toBeUndefined();
  });

  it('stops staging when aborted and leaves no member behind', async () => {
    const ac = new AbortController();
    const b = builder({ signal: ac.signal });
    await b.init();
    const endless = new Readable({ read() { this.push(Buffer.alloc(64 * 1024, 0x61)); } });
    const p = b.sink('s', 's').add({ name: 'endless.log', content: endless });
    setImmediate(() => ac.abort());
    await expect(p).rejects.toThrow(/abort/i);
    expect(await fsp.readdir(path.join(dir, 'stage'))).toEqual([]);
  });
});
