/**
 * get_boot_reason end to end: real mosquitto, the real kernel with the boot-reason plugin,
 * EVerest played by EverestSim. Reboots are simulated by restarting the daemon on the same
 * stateDir with a changed boot id file; watchdogs by bootstatus files in a temp dir.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { EverestSim, type EverestSide } from '../helpers/everest.js';
import { startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon.js';

let broker: Broker;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

class Board {
  readonly dir = tempDir('esc-boot-');
  readonly bootIdFile = path.join(this.dir, 'boot_id');
  readonly stateDir = path.join(this.dir, 'state');
  daemon!: RunningDaemon;
  ev!: EverestSide;
  #restarts = 0;

  constructor(bootId = 'boot-1') {
    writeFileSync(this.bootIdFile, `${bootId}\n`);
  }

  watchdog(name: string, bootstatus: string): void {
    mkdirSync(path.join(this.dir, 'watchdog', name), { recursive: true });
    writeFileSync(path.join(this.dir, 'watchdog', name, 'bootstatus'), bootstatus);
  }

  async start(): Promise<void> {
    this.daemon = await startDaemon({
      stateDir: this.stateDir,
      mqtt: { url: broker.url },
      plugins: [{ name: 'boot-reason', options: { bootIdPath: this.bootIdFile, watchdogGlob: path.join(this.dir, 'watchdog', '*', 'bootstatus') } }],
    });
    this.ev ??= await EverestSim.connect(broker.url);
    this.#restarts = 0;
  }

  /** the daemon stops; the board reboots (new boot id) or not; the daemon starts again */
  async restartDaemon(newBootId?: string): Promise<void> {
    await this.daemon.stop();
    if (newBootId) writeFileSync(this.bootIdFile, `${newBootId}\n`);
    await this.start();
  }

  /** EVerest (re)starts: heartbeat from 0, then the one get_boot_reason of its start-up */
  async everestStarts(): Promise<unknown> {
    const seenBefore = this.daemon.logs.some((l) => /EVerest heartbeat seen|EVerest restarted/.test(l.msg ?? ''));
    await this.ev.publishRaw('heartbeat', '0');
    if (seenBefore) {
      // a counter that went back is a restart the daemon sees
      const n = ++this.#restarts;
      await this.daemon.waitForLog(() => this.daemon.logs.filter((l) => /EVerest restarted/.test(l.msg ?? '')).length >= n);
    } else {
      await this.daemon.waitForLog(/EVerest heartbeat seen/);
    }
    for (const n of ['1', '2', '3']) await this.ev.publishRaw('heartbeat', n);
    return this.ev.request('get_boot_reason');
  }
}

describe('get_boot_reason', () => {
  test('fresh boot with nothing recorded: PowerUp', async () => {
    const b = new Board();
    await b.start();
    expect(await b.everestStarts()).toBe('PowerUp');
  });

  test('EVerest restarts while the OS keeps running: ApplicationReset', async () => {
    const b = new Board();
    await b.start();
    expect(await b.everestStarts()).toBe('PowerUp');
    expect(await b.everestStarts()).toBe('ApplicationReset');
    expect(await b.everestStarts()).toBe('ApplicationReset');
  });

  test('daemon restart in the same kernel boot: ApplicationReset; after a reboot: PowerUp', async () => {
    const b = new Board();
    await b.start();
    expect(await b.everestStarts()).toBe('PowerUp');
    await b.restartDaemon(); // e.g. EVerest and the daemon restarted together, same boot id
    expect(await b.everestStarts()).toBe('ApplicationReset');
    await b.restartDaemon('boot-2'); // reboot without any reset command: power cycle
    expect(await b.everestStarts()).toBe('PowerUp');
  });

  test('a daemon restart before EVerest asked still reports PowerUp for this boot', async () => {
    const b = new Board();
    await b.start();
    await b.restartDaemon();
    expect(await b.everestStarts()).toBe('PowerUp');
  });

  test('watchdog bootstatus non-zero on a new boot: Watchdog, only for that boot', async () => {
    const b = new Board();
    b.watchdog('watchdog0', '0\n');
    b.watchdog('watchdog1', '32\n');
    await b.start();
    expect(await b.everestStarts()).toBe('Watchdog');
    expect(await b.everestStarts()).toBe('ApplicationReset');
    rmSync(path.join(b.dir, 'watchdog'), { recursive: true });
    b.watchdog('watchdog0', '0\n');
    await b.restartDaemon('boot-2');
    expect(await b.everestStarts()).toBe('PowerUp');
  });

  test('boot id unreadable and nothing else known: Unknown', async () => {
    const b = new Board();
    rmSync(b.bootIdFile);
    await b.start();
    expect(await b.everestStarts()).toBe('Unknown');
    await b.daemon.waitForLog(/cannot read the kernel boot id/);
  });

  test('corrupt plugin state is set aside and the boot still answered', async () => {
    const b = new Board();
    await b.start();
    expect(await b.everestStarts()).toBe('PowerUp');
    await b.daemon.stop();
    writeFileSync(path.join(b.stateDir, 'plugins', 'boot-reason', 'boot.json'), '{not json');
    writeFileSync(b.bootIdFile, 'boot-2\n');
    await b.start();
    expect(await b.everestStarts()).toBe('PowerUp');
  });

  test('a burst of 200 concurrent requests: all answered ApplicationReset, boot.json not rewritten', async () => {
    const b = new Board();
    await b.start();
    expect(await b.everestStarts()).toBe('PowerUp');
    const stateFile = path.join(b.stateDir, 'plugins', 'boot-reason', 'boot.json');
    // every write replaces the file (temp file + rename): a new inode and mtime
    const before = statSync(stateFile);
    const answers = await Promise.all(Array.from({ length: 200 }, () => b.ev.request('get_boot_reason', undefined, { timeoutMs: 20_000 })));
    expect(answers).toEqual(Array(200).fill('ApplicationReset'));
    const after = statSync(stateFile);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(JSON.parse(readFileSync(stateFile, 'utf8'))).toEqual({ bootId: 'boot-1', told: true });
  });

  test('a burst of 200 concurrent requests on a new boot with a recorded reason: reported exactly once', async () => {
    const b = new Board();
    // the reset plugin recorded RemoteReset before the reboot
    mkdirSync(path.join(b.stateDir, 'core'), { recursive: true, mode: 0o700 });
    writeFileSync(path.join(b.stateDir, 'core', 'next-boot-reason.json'), JSON.stringify({ reason: 'RemoteReset', at: new Date().toISOString(), bootId: 'boot-0' }), { mode: 0o600 });
    await b.start();
    const answers = await Promise.all(Array.from({ length: 200 }, () => b.ev.request('get_boot_reason', undefined, { timeoutMs: 20_000 })));
    expect(answers.filter((a) => a === 'RemoteReset')).toHaveLength(1);
    expect(answers.filter((a) => a === 'ApplicationReset')).toHaveLength(199);
    const stateFile = path.join(b.stateDir, 'plugins', 'boot-reason', 'boot.json');
    expect(JSON.parse(readFileSync(stateFile, 'utf8'))).toEqual({ bootId: 'boot-1', told: true });
    expect(await b.everestStarts()).toBe('ApplicationReset');
  });
});
