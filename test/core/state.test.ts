import { readdirSync, statSync, writeFileSync } from 'node:fs';
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
