import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AdapterDeps, LogSource, LogWindow } from '../../core/api.js';
import journald from '../../adapters/log-source/journald.js';
import files, { rotationBase } from '../../adapters/log-source/files.js';
import snapshot from '../../adapters/log-source/system-snapshot.js';
import { mountedFilesystems, parseOsRelease } from '../../adapters/log-source/board.js';
import { LOG_SOURCES } from '../../adapters/log-source/index.js';
import { ArchiveBuilder } from '../../plugins/log-upload/archive.js';
import { makeRedactor, REDACTED } from '../../plugins/log-upload/redact.js';
import { at, extractArchive, makeJournal, quietLog } from './fixtures.js';

let dir: string;
let deps: AdapterDeps;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sources-test-'));
  deps = { log: quietLog, stateDir: path.join(dir, 'state'), env: { ...process.env } };
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Run one source into a real archive and return the extracted files and the notes. */
async function collect(source: LogSource, window: LogWindow, redact?: Parameters<typeof makeRedactor>[0]) {
  const b = new ArchiveBuilder({ dir: path.join(dir, 'stage'), signal: new AbortController().signal, redactor: makeRedactor(redact) });
  await b.init();
  let error: Error | undefined;
  try {
    await source.collect(window, b.sink(source.type, source.type), new AbortController().signal);
  } catch (err) {
    error = err as Error;
  }
  const out = path.join(dir, 'out.tar.gz');
  await b.pack(out, undefined, () => ({}));
  const got = await extractArchive(out, path.join(dir, 'x'));
  return { files: got, notes: b.notes.map((n) => n.message), error };
}

describe('journald source', () => {
  const entries = [
    { at: at(0), message: 'boot at eight', identifier: 'everest' },
    { at: at(1), message: 'ocpp connected token=s3cr3tTok', identifier: 'ocpp', unit: 'everest.service' },
    { at: at(2), message: 'session started', identifier: 'everest', unit: 'everest.service' },
    { at: at(3), message: 'late entry', identifier: 'ocpp' },
  ];

  it('is registered under its config type', async () => {
    expect((await LOG_SOURCES.journald!()).default.type).toBe('journald');
    expect((await LOG_SOURCES.files!()).default.type).toBe('files');
    expect((await LOG_SOURCES['system-snapshot']!()).default.type).toBe('system-snapshot');
  });

  it('collects exactly the entries inside the window, redacted', async () => {
    const jdir = path.join(dir, 'journal');
    await makeJournal(jdir, entries);
    const src = await journald.create({ directory: jdir }, deps);
    const { files: got, error } = await collect(src, { since: at(0.5), until: at(2.5) }, [{ regex: 'token=\\S+' }]);
    expect(error).toBeUndefined();
    const text = got.get('journald/journal.log')!;
    expect(text).toContain('2026-11-20T09:00:00.000000+0000 testcharger ocpp[101]: ocpp connected ' + REDACTED);
    expect(text).toContain('session started');
    expect(text).not.toContain('boot at eight');
    expect(text).not.toContain('late entry');
    expect(text).not.toContain('s3cr3tTok');
  });

  it('filters by identifier and writes JSON lines when asked', async () => {
    const jdir = path.join(dir, 'journal');
    await makeJournal(jdir, entries);
    const src = await journald.create({ directory: jdir, identifiers: ['ocpp'], output: 'json' }, deps);
    const { files: got } = await collect(src, {});
    const lines = got.get('journald/journal.jsonl')!.trim().split('\n').map((l) => JSON.parse(l) as { MESSAGE: string });
    expect(lines.map((l) => l.MESSAGE)).toEqual(['ocpp connected token=s3cr3tTok', 'late entry']);
  });

  it('reads journal files given by glob, and filters by unit', async () => {
    await makeJournal(path.join(dir, 'j1'), entries.slice(0, 2), 'one');
    await makeJournal(path.join(dir, 'j2'), entries.slice(2), 'two');
    const src = await journald.create({ files: [path.join(dir, 'j*', '*.journal')], units: ['everest.service'] }, deps);
    const text = (await collect(src, {})).files.get('journald/journal.log')!;
    expect(text.trim().split('\n')).toHaveLength(2);
    expect(text).toContain('ocpp connected');
    expect(text).toContain('session started');
  });

  it('fails clearly (and notes why) when journalctl fails', async () => {
    const src = await journald.create({ directory: path.join(dir, 'missing') }, deps);
    const { error, notes } = await collect(src, {});
    expect(notes.join('\n')).toMatch(/journalctl exited with 1: .*missing/);
    expect(error).toBeUndefined();
    const none = await journald.create({ directory: dir, journalctl: 'no-such-journalctl' }, deps);
    const r = await collect(none, {});
    expect(r.error?.message).toMatch(/no-such-journalctl|ENOENT/);
  });

  it('refuses option values that journalctl would read as flags', () => {
    expect(() => journald.create({ units: ['--rotate'] }, deps)).toThrow(/must not start with '-'/);
  });
});

describe('files source', () => {
  async function writeLog(p: string, text: string, mtime: Date, gz = false) {
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, gz ? zlib.gzipSync(text) : text);
    await fsp.utimes(p, mtime, mtime);
  }

  it('groups rotated files by name', () => {
    expect(rotationBase('/l/ocpp.log.2.gz')).toBe('/l/ocpp.log');
    expect(rotationBase('/l/ocpp.log.1')).toBe('/l/ocpp.log');
    expect(rotationBase('/l/messages-20261120')).toBe('/l/messages');
    expect(rotationBase('/l/session-7.log')).toBe('/l/session-7.log');
  });

  it('includes the files whose time span meets the window, decompressing rotated .gz', async () => {
    const logs = path.join(dir, 'logs');
    // ocpp.log.2.gz holds up to 08:00, .1 from 08:00 to 10:00, the live file 10:00 to 12:00
    await writeLog(path.join(logs, 'ocpp', 'ocpp.log.2.gz'), 'oldest rotated\n', at(0), true);
    await writeLog(path.join(logs, 'ocpp', 'ocpp.log.1'), 'middle rotated password=hunter2\n', at(2));
    await writeLog(path.join(logs, 'ocpp', 'ocpp.log'), 'current\n', at(4));
    await writeLog(path.join(logs, 'sessions', 's-1.log'), 'session one\n', at(-5));
    await writeLog(path.join(logs, 'sessions', 's-2.log'), 'session two\n', at(1.5));
    const src = await files.create({ paths: [path.join(logs, 'ocpp', 'ocpp.log*'), path.join(logs, 'sessions', '*.log')] }, deps);

    const a = await collect(src, { since: at(1), until: at(1.5) }, ['hunter2']);
    const names = [...a.files.keys()].filter((n) => n.startsWith('files/')).map((n) => path.basename(n)).sort();
    expect(names).toEqual(['ocpp.log.1', 's-2.log']);
    const mid = [...a.files.entries()].find(([n]) => n.endsWith('ocpp.log.1'))![1];
    expect(mid).toBe(`middle rotated password=${REDACTED}\n`);
    expect(a.notes.join('\n')).toMatch(/ocpp\.log\.2\.gz: outside the time window/);
    await fsp.rm(path.join(dir, 'x'), { recursive: true });

    const b = await collect(src, { since: at(-1), until: at(0.5) });
    const bNames = [...b.files.keys()].filter((n) => n.startsWith('files/')).map((n) => path.basename(n)).sort();
    // the .gz is stored decompressed under its name without .gz; s-1 ended before the window;
    // s-2 (no older sibling) may have started before the window ended
    expect(bNames).toEqual(['ocpp.log.1', 'ocpp.log.2', 's-2.log']);
    expect([...b.files.entries()].find(([n]) => n.endsWith('ocpp.log.2'))![1]).toBe('oldest rotated\n');
  });

  it('keeps the full path under files/ and notes patterns without matches and unreadable files', async () => {
    const logs = path.join(dir, 'logs');
    await writeLog(path.join(logs, 'a.log'), 'a\n', at(0));
    await writeLog(path.join(logs, 'broken.log.1.gz'), 'not gzip', at(0));
    await fsp.writeFile(path.join(logs, 'broken.log.1.gz'), 'not gzip at all');
    const src = await files.create({ paths: [path.join(logs, '*.log'), path.join(logs, '*.gz')] }, deps);
    const r = await collect(src, {});
    expect(r.files.get(`files${logs}/a.log`)).toBe('a\n');
    expect(r.notes.join('\n')).toMatch(/broken\.log\.1\.gz: could not be read/);
    const none = await files.create({ paths: [path.join(dir, 'nothing', '*.log')] }, deps);
    expect((await collect(none, {})).notes.join('\n')).toMatch(/no file matches/);
  });
});

describe('system-snapshot source', () => {
  it('writes one JSON file describing the board', async () => {
    const src = await snapshot.create({ versions: ['kernel', 'node'] }, deps);
    const { files: got } = await collect(src, { since: at(0) });
    const snap = JSON.parse(got.get('system-snapshot/system-snapshot.json')!);
    expect(snap.hostname).toBe(os.hostname());
    expect(snap.os.kernel).toBe(os.release());
    expect(snap.versions.node).toBe(process.versions.node);
    expect(snap.memory.total).toBe(os.totalmem());
    expect(snap.window.since).toBe(at(0).toISOString());
    // the interfaces as the kernel reports them (read without running a program)
    const lo = (snap.network as { iface: string; mtu?: number; addresses: { address: string }[] }[]).find((n) => n.iface === 'lo');
    expect(lo?.addresses.map((a) => a.address)).toContain('127.0.0.1');
    expect(lo?.mtu).toBe(Number(readFileSync('/sys/class/net/lo/mtu', 'utf8')));
    expect((snap.network as { iface: string }[]).map((n) => n.iface).sort()).toEqual(readdirSync('/sys/class/net').sort());
    expect(snap.uptimeSeconds).toBeGreaterThan(0);
  });

  it('reports the OS from os-release, the disks as df does, and program versions as the programs print them', async () => {
    const src = await snapshot.create({ versions: ['rauc', 'openssl', 'systemd', 'mosquitto'] }, deps);
    const { files: got } = await collect(src, { since: at(0) });
    const snap = JSON.parse(got.get('system-snapshot/system-snapshot.json')!);
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    expect(snap.os.distro).toBe(pretty);
    // df -kP /: "Filesystem 1024-blocks Used Available Capacity Mounted-on"
    const df = execFileSync('df', ['-kP', '/'], { encoding: 'utf8' }).trim().split('\n')[1]!.split(/\s+/);
    const root = (snap.disks as { mount: string; size: number; available: number; type: string }[]).find((d) => d.mount === '/');
    expect(root?.size).toBe(Number(df[1]) * 1024);
    expect(Math.abs(root!.available - Number(df[3]) * 1024)).toBeLessThan(64 * 1024 * 1024); // the disk is in use meanwhile
    expect((snap.disks as { type: string }[]).map((d) => d.type)).not.toContain('proc');
    const first = (argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8' }).split('\n')[0]!;
    expect(snap.versions.rauc).toBe(first(['rauc', '--version']).split(' ')[1]);
    expect(snap.versions.openssl).toBe(first(['openssl', 'version']).split(' ')[1]);
    expect(snap.versions.systemd).toBe(first(['systemctl', '--version']).replace(/^systemd /, ''));
    // mosquitto -h prints its version and exits non-zero
    const mosquittoHelp = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' }).stdout;
    expect(snap.versions.mosquitto).toBe(/^mosquitto version (\S+)$/m.exec(mosquittoHelp)![1]);
    expect(snap.errors).toBeUndefined();
  });

  it('a program that is not installed is reported as null, and no shell is involved', async () => {
    const empty = path.join(dir, 'empty-bin');
    await fsp.mkdir(empty);
    const src = await snapshot.create({ versions: ['rauc', 'swupdate', 'kernel'] }, { ...deps, env: { ...deps.env, PATH: empty } });
    const { files: got } = await collect(src, {});
    const snap = JSON.parse(got.get('system-snapshot/system-snapshot.json')!);
    expect(snap.versions).toEqual({ rauc: null, swupdate: null, kernel: os.release() });
  });

  it('asks a program for its version once per VERSION_TTL_MS, not on every log request', async () => {
    const bin = path.join(dir, 'bin');
    await fsp.mkdir(bin);
    const rauc = execFileSync('sh', ['-c', 'command -v rauc'], { encoding: 'utf8' }).trim();
    await fsp.symlink(rauc, path.join(bin, 'rauc'));
    const env = { ...deps.env, PATH: bin };
    const src = await snapshot.create({ versions: ['rauc'] }, { ...deps, env });
    const versionsOf = async (s: LogSource) => JSON.parse((await collect(s, {})).files.get('system-snapshot/system-snapshot.json')!).versions;
    const expected = execFileSync(rauc, ['--version'], { encoding: 'utf8' }).trim().split(' ')[1];
    expect(await versionsOf(src)).toEqual({ rauc: expected });
    await fsp.rm(path.join(bin, 'rauc'));
    // the program is gone, but the answer of a moment ago is reused
    expect(await versionsOf(src)).toEqual({ rauc: expected });
    // a fresh source (the next daemon run) asks again
    expect(await versionsOf(await snapshot.create({ versions: ['rauc'] }, { ...deps, env }))).toEqual({ rauc: null });
  });

  it('a cancelled collection stops and writes nothing', async () => {
    const src = await snapshot.create({}, deps);
    const added: string[] = [];
    const ctl = new AbortController();
    ctl.abort(new Error('newer log request'));
    await expect(src.collect({}, { add: async (f: { name: string }) => void added.push(f.name) } as never, ctl.signal)).rejects.toThrow('newer log request');
    expect(added).toEqual([]);
  });

  it('reads the mount table as the kernel escapes it, skips pseudo file systems and hidden mounts', async () => {
    const spaced = path.join(dir, 'with space');
    await fsp.mkdir(spaced);
    const table = [
      'proc /proc proc rw,nosuid 0 0',
      `/dev/x1 ${dir.replace(/ /g, '\\040')}/with\\040space ext4 ro,relatime 0 0`,
      `/dev/old ${dir} ext4 rw 0 0`,
      `/dev/new ${dir} xfs rw 0 0`,
      '/dev/gone /no/such/mount ext4 rw 0 0',
    ].join('\n');
    await fsp.writeFile(path.join(dir, 'mounts'), table);
    const got = await mountedFilesystems(path.join(dir, 'mounts'));
    expect(got.map((m) => [m.fs, m.mount, m.type, m.readOnly])).toEqual([
      ['/dev/x1', spaced, 'ext4', true],
      ['/dev/new', dir, 'xfs', false],
    ]);
    expect(got[0]!.size).toBeGreaterThan(0);
    expect(parseOsRelease('NAME="Yocto \\"Poky\\""\nVERSION_ID=4.0\n# comment\nID=poky')).toEqual({ NAME: 'Yocto "Poky"', VERSION_ID: '4.0', ID: 'poky' });
  });

  it('an empty versions list reports no program versions (rather than probing every program)', async () => {
    const src = await snapshot.create({ versions: [] }, deps);
    const { files: got } = await collect(src, { since: at(0) });
    const snap = JSON.parse(got.get('system-snapshot/system-snapshot.json')!);
    expect(snap.versions).toEqual({});
    expect(snap.os.kernel).toBe(os.release());
  });
});
