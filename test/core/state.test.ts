import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { FileStateStore } from '../../core/state.js';
import { PersistedBootReason } from '../../core/bootReason.js';
import { memoryLogger, tempDir } from '../helpers/daemon.js';

describe('persistent state', () => {
  test('round trip; files 0600 in a 0700 folder; last write wins', async () => {
    const dir = path.join(tempDir(), 'store');
    const store = new FileStateStore(dir, memoryLogger().logger);
    await Promise.all([store.set('tx', { n: 1 }), store.set('tx', { n: 2 }), store.set('tx', { n: 3 })]);
    expect(await store.get('tx')).toEqual({ n: 3 });
    expect(statSync(path.join(dir, 'tx.json')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(await store.keys()).toEqual(['tx']);
    await store.delete('tx');
    expect(await store.get('tx')).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
  });

  test('a burst of writes to one key: every caller resolves once the newest is on disk, reads see the newest at once', async () => {
    const dir = path.join(tempDir(), 'store');
    const store = new FileStateStore(dir, memoryLogger().logger);
    const writes: Promise<void>[] = [];
    for (let n = 1; n <= 50; n++) {
      writes.push(store.set('status', { n }));
      // read-your-writes while the earlier writes are still on their way to the disk
      expect(await store.get('status')).toEqual({ n });
    }
    await Promise.all(writes);
    expect(JSON.parse(readFileSync(path.join(dir, 'status.json'), 'utf8'))).toEqual({ n: 50 });
    // a delete and a set queued behind it, in one tick: the last one is what the disk holds
    const ops = [store.delete('status'), store.set('other', { x: 1 })];
    expect(await store.keys()).toEqual(['other']);
    expect(await store.get('status')).toBeUndefined();
    await Promise.all(ops);
    expect(readdirSync(dir).sort()).toEqual(['other.json']);
    const again = [store.set('status', { n: 51 }), store.delete('status'), store.set('status', { n: 52 })];
    await Promise.all(again);
    expect(JSON.parse(readFileSync(path.join(dir, 'status.json'), 'utf8'))).toEqual({ n: 52 });
    // a fresh store (the next run) reads what the disk holds
    expect(await new FileStateStore(dir, memoryLogger().logger).get('status')).toEqual({ n: 52 });
  });

  test('values read or written once are answered from memory: the daemon is the only writer of its state dir', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'boot.json'), '{"told":false}');
    const store = new FileStateStore(dir, memoryLogger().logger);
    const first = await store.get<{ told: boolean }>('boot');
    expect(first).toEqual({ told: false });
    first!.told = true; // a caller changing its copy changes nothing stored
    writeFileSync(path.join(dir, 'boot.json'), '{"told":"edited behind the store"}');
    expect(await store.get('boot')).toEqual({ told: false });
    expect(await store.get('absent')).toBeUndefined();
    writeFileSync(path.join(dir, 'absent.json'), '{}');
    expect(await store.get('absent')).toBeUndefined();
  });

  test('a corrupt file is moved aside and reported, not a crash', async () => {
    const dir = tempDir();
    const mem = memoryLogger();
    const store = new FileStateStore(dir, mem.logger);
    writeFileSync(path.join(dir, 'tx.json'), '{"phase":"downl');
    expect(await store.get('tx')).toBeUndefined();
    expect(readdirSync(dir).some((n) => n.startsWith('tx.json.corrupt-'))).toBe(true);
    expect(mem.lines.some((l) => l.level === 50 && /corrupt/.test(String(l.msg)))).toBe(true);
    await store.set('tx', { ok: true });
    expect(await store.get('tx')).toEqual({ ok: true });
  });

  test('temp files of an interrupted write are cleaned up; keys are checked', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, '.tx.json.123.456.tmp'), 'partial');
    const store = new FileStateStore(dir, memoryLogger().logger);
    expect(await store.keys()).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
    await expect(store.set('../escape', 1)).rejects.toThrow(/invalid state key/);
    await expect(store.get('a/b')).rejects.toThrow(/invalid state key/);
  });
});

describe('boot reason record', () => {
  test('FirmwareUpdate is kept over a later reset reason; consume clears it', async () => {
    const store = new FileStateStore(tempDir(), memoryLogger().logger);
    const br = new PersistedBootReason(store, memoryLogger().logger, () => 'boot-1');
    await br.record('FirmwareUpdate');
    await br.record('RemoteReset');
    expect((await br.peek())?.reason).toBe('FirmwareUpdate');
    expect(await br.consume()).toMatchObject({ reason: 'FirmwareUpdate', bootId: 'boot-1' });
    expect(await br.consume()).toBeUndefined();
    await br.record('ScheduledReset');
    await br.record('RemoteReset');
    expect((await br.peek())?.reason).toBe('RemoteReset');
  });

  test('once nothing is recorded, a record made later (also while a consume runs) is still handed out once', async () => {
    const dir = tempDir();
    const store = new FileStateStore(dir, memoryLogger().logger);
    const br = new PersistedBootReason(store, memoryLogger().logger, () => 'boot-1');
    expect(await br.peek()).toBeUndefined();
    expect(await br.consume()).toBeUndefined();
    await br.record('RemoteReset');
    expect((await br.peek())?.reason).toBe('RemoteReset');
    const [consumed] = await Promise.all([br.consume(), br.record('ScheduledReset')]);
    const handedOut = [consumed?.reason, (await br.consume())?.reason].filter(Boolean);
    expect(handedOut.length).toBeGreaterThanOrEqual(1);
    expect(await br.consume()).toBeUndefined();
    // a new store on the same folder (the next run) agrees that nothing is left
    expect(await new PersistedBootReason(new FileStateStore(dir, memoryLogger().logger), memoryLogger().logger).peek()).toBeUndefined();
  });
});
