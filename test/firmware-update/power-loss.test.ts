/**
 * Power loss: the daemon runs as a child process and is killed with SIGKILL in each phase; a new
 * daemon on the same state dir must report the truth (resume, continue waiting, or fail without
 * installing twice).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '../helpers/daemon.js';
import { allDelivered, leftovers, nodeScript, pluginDir, runDaemon, serveImage, sha256, spawnRigDaemon, startRig, until } from './harness.js';

async function imageBytes(dir: string): Promise<number> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const img = names.find((n) => n.startsWith('image-'));
  return img ? (await fsp.stat(path.join(dir, img))).size : 0;
}

describe('firmware-update after kill -9', () => {
  it('during a download: the next start resumes it with a Range request under the same request_id', async () => {
    const rig = await startRig({ options: { installPermission: 'proceed' } });
    const img = serveImage(rig, 600 * 1024, '/fw.bin', { throttleBytesPerSec: 300 * 1024 });
    const d = await spawnRigDaemon(rig, tempDir('fw-spawn-'));
    expect(await rig.update({ location: img.url, request_id: 21 })).toBe('Accepted');
    await rig.waitFw('Downloading', 21);
    await allDelivered(rig);
    await until(async () => (await imageBytes(pluginDir(rig))) >= 100 * 1024, 10_000, 'a part of the image on disk');
    d.kill('SIGKILL');
    await d.exited;
    const kept = await imageBytes(pluginDir(rig));
    await runDaemon(rig);
    await rig.waitFw('Installed', 21);
    expect(rig.names(21)).toEqual(['Downloading', 'Downloading', 'Downloaded', 'Installing', 'Installed']);
    const ranges = rig.http.requestsTo('/fw.bin').map((r) => r.headers.range);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBeUndefined();
    expect(Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1])).toBeGreaterThanOrEqual(kept);
    expect(sha256(await fsp.readFile(path.join(rig.stateDir, 'adapters', 'simulated-installer', 'slot-b')))).toBe(sha256(img.bytes));
    expect(await leftovers(rig)).toEqual([]);
  });

  it('while waiting for permission: the next start reports the image ready again and installs on allow', async () => {
    const rig = await startRig();
    const img = serveImage(rig);
    const d = await spawnRigDaemon(rig, tempDir('fw-spawn-'));
    expect(await rig.update({ location: img.url, request_id: 22 })).toBe('Accepted');
    await rig.waitFw('Downloaded', 22);
    await allDelivered(rig);
    d.kill('SIGKILL');
    await d.exited;
    await runDaemon(rig);
    await until(() => rig.names(22).length >= 3, 10_000, 'the restored status');
    await rig.allow();
    await rig.waitFw('Installed', 22);
    expect(rig.names(22)).toEqual(['Downloading', 'Downloaded', 'Downloaded', 'Installing', 'Installed']);
    expect(rig.http.requestsTo('/fw.bin')).toHaveLength(1);
  });

  it('a status the last run could not deliver and the plugin reports again on start reaches EVerest once', async () => {
    const rig = await startRig();
    const img = serveImage(rig);
    const d1 = await runDaemon(rig, { heartbeat: { timeoutMs: 600 } });
    await d1.waitForLog(/EVerest heartbeat seen/);
    rig.ev.stopHeartbeat();
    await d1.waitForLog(/EVerest heartbeat lost/);
    expect(await rig.update({ location: img.url, request_id: 24 })).toBe('Accepted');
    await d1.waitForLog((l) => l.msg === 'status' && l.firmware_update_status === 'Downloaded');
    await d1.stop();
    expect(rig.names(24)).toEqual([]);
    rig.ev.startHeartbeat(200);
    const d2 = await runDaemon(rig);
    await d2.waitForLog(/restored undelivered statuses/);
    await rig.waitFw('Downloaded', 24);
    await rig.allow();
    await rig.waitFw('Installed', 24);
    expect(rig.names(24)).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
  });

  it('during a slow install: the next start reports InstallationFailed and does not install again', async () => {
    const dir = tempDir('fw-script-');
    const calls = path.join(dir, 'calls');
    const script = nodeScript(
      dir,
      'install',
      `const fs = require('node:fs');
fs.appendFileSync(${JSON.stringify(calls)}, process.pid + '\\n');
console.log('Installing');
setTimeout(() => process.exit(0), 20000);`,
    );
    onTestFinished(() => {
      for (const pid of existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean) : []) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
    const rig = await startRig({ installer: { type: 'script', command: [script, '{file}'] }, options: { installPermission: 'proceed' } });
    const img = serveImage(rig);
    const d = await spawnRigDaemon(rig, tempDir('fw-spawn-'));
    expect(await rig.update({ location: img.url, request_id: 23 })).toBe('Accepted');
    await rig.waitFw('Installing', 23);
    await until(() => existsSync(calls), 10_000, 'the install script to start');
    await allDelivered(rig);
    d.kill('SIGKILL');
    await d.exited;
    const daemon = await runDaemon(rig);
    await rig.waitFw('InstallationFailed', 23);
    expect(rig.names(23)).toEqual(['Downloading', 'Downloaded', 'Installing', 'InstallationFailed']);
    await daemon.waitForLog(/installation was interrupted/);
    expect(readFileSync(calls, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
    expect(await leftovers(rig)).toEqual([]);
  });
});
