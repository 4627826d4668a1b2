/**
 * The OCPP status sequences (shared ocpp-requirements.md §2 items 1-8) end to end: EverestSim
 * sends update_firmware / allow_firmware_installation through a real mosquitto to the daemon,
 * which downloads from a real HTTP server and installs with the simulated A/B installer.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/daemon.js';
import { runDaemon, serveImage, startRig } from './harness.js';
import { makeCa, makeSigner, signFile } from './pki.js';

const slot = (stateDir: string, s: 'a' | 'b') => fsp.readFile(path.join(stateDir, 'adapters', 'simulated-installer', `slot-${s}`));

describe('firmware-update sequences', () => {
  it('2. unsigned 2.0.1 update: Downloading, Downloaded, (allow) Installing, Installed', async () => {
    const rig = await startRig();
    await runDaemon(rig);
    const img = serveImage(rig);
    expect(await rig.update({ location: img.url, request_id: 7 })).toBe('Accepted');
    await rig.waitFw('Downloaded', 7);
    await rig.allow();
    await rig.waitFw('Installed', 7);
    expect(rig.names(7)).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
    expect(await slot(rig.stateDir, 'b')).toEqual(img.bytes);
    // repeated permission after the end is harmless
    await rig.allow();
    expect(rig.names()).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
  });
});
