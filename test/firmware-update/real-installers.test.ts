/**
 * The whole path with real installers: a signed RAUC bundle into file slots (through the rauc
 * adapter, a private D-Bus and `rauc service`), and a signed SWUpdate .swu, both downloaded over
 * HTTP and signed for OCPP with an openssl-made certificate.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '../helpers/daemon.js';
import { raucInstallSkipReason, startRauc } from '../helpers/rauc.js';
import { makeSwupdate } from '../helpers/swupdate.js';
import { leftovers, runDaemon, sha256, startRig, until } from './harness.js';
import { makeCa, makeSigner, signFile } from './pki.js';

async function ocppSignature(file: string) {
  const ca = await makeCa(tempDir('fw-pki-'));
  const signer = await makeSigner(ca);
  return { signing_certificate: signer.certPem, signature: await signFile(file, signer) };
}

describe('firmware-update with real installers', () => {
  it.skipIf(raucInstallSkipReason() !== undefined)(
    'RAUC: signed bundle into slot B, reboot, Installed with the original request_id and the slot marked good',
    async () => {
      const rauc = await startRauc({ compatible: 'test-board' });
      onTestFinished(() => rauc.stop());
      const bundle = await rauc.buildBundle({ version: '2.0.0' });
      const rig = await startRig({
        installer: { type: 'rauc', confPath: rauc.confPath, busAddress: rauc.busAddress },
        plugins: ['boot-reason'],
      });
      rig.http.serve('/update.raucb', { file: bundle.path });
      let daemon = await runDaemon(rig);
      const sig = await ocppSignature(bundle.path);
      expect(await rig.update({ location: `${rig.http.url}/update.raucb`, request_id: 501, ...sig })).toBe('Accepted');
      await rig.waitFw('SignatureVerified', 501);
      await rig.allow();
      await rig.waitFw('InstallRebooting', 501, 60_000);
      await until(async () => (await rig.powerCalls()).includes('reboot'), 5000, 'the reboot');
      expect(sha256(rauc.readSlot('B').subarray(0, bundle.imageSize))).toBe(sha256(bundle.image));
      expect(rauc.bootState().primary).toBe('B');

      await daemon.stop();
      await rauc.rebootInto('B');
      daemon = await runDaemon(rig);
      await rig.waitFw('Installed', 501, 30_000);
      expect(rig.names(501)).toEqual(['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'InstallRebooting', 'Installed']);
      const status = await rauc.status();
      expect(status.booted).toBe('B');
      expect(rauc.bootState().B).toBe('good');
      expect(rauc.bootCalls()).toContain('set-state B good');
      expect(await rig.ev.request('get_boot_reason')).toBe('FirmwareUpdate');
      expect(await leftovers(rig)).toEqual([]);
    },
  );

  it('RAUC: a tampered bundle is refused by the installer before permission is asked (InstallVerificationFailed)', async () => {
    const rauc = await startRauc({ compatible: 'test-board' });
    onTestFinished(() => rauc.stop());
    const bundle = await rauc.buildBundle({ version: '2.0.1', tamper: 'payload' });
    const rig = await startRig({ installer: { type: 'rauc', confPath: rauc.confPath, busAddress: rauc.busAddress } });
    rig.http.serve('/bad.raucb', { file: bundle.path });
    await runDaemon(rig);
    expect(await rig.update({ location: `${rig.http.url}/bad.raucb`, request_id: 502 })).toBe('Accepted');
    await rig.waitFw('InstallVerificationFailed', 502, 30_000);
    expect(rig.names(502)).toEqual(['Downloading', 'Downloaded', 'InstallVerificationFailed']);
    expect(rauc.bootState().primary).toBe('A');
  });

  it('SWUpdate: a signed .swu is installed (Installed without reboot), a corrupted one gives InstallVerificationFailed', async () => {
    const swu = await makeSwupdate({ hardware: 'test-board:1.0' });
    onTestFinished(() => swu.stop());
    const good = await swu.buildSwu({ version: '2.0.0' });
    const bad = await swu.buildSwu({ version: '2.0.1', corrupt: true, name: 'bad.swu' });
    const rig = await startRig({
      installer: { type: 'swupdate', publicKey: swu.publicKey, hardware: swu.hardware, tmpDir: swu.tmpDir, rebootRequired: false },
      options: { installPermission: 'proceed' },
    });
    rig.http.serve('/good.swu', { file: good.path });
    rig.http.serve('/bad.swu', { file: bad.path });
    await runDaemon(rig);
    const sig = await ocppSignature(good.path);
    expect(await rig.update({ location: `${rig.http.url}/good.swu`, request_id: 601, ...sig })).toBe('Accepted');
    await rig.waitFw('Installed', 601, 30_000);
    expect(rig.names(601)).toEqual(['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'Installed']);
    expect(sha256((await fsp.readFile(swu.targetImage)).subarray(0, good.image.length))).toBe(sha256(good.image));
    expect(await fsp.readFile(swu.targetFile, 'utf8')).toBe(good.fileContent);

    expect(await rig.update({ location: `${rig.http.url}/bad.swu`, request_id: 602 })).toBe('Accepted');
    await rig.waitFw('InstallVerificationFailed', 602, 30_000);
    expect(rig.names(602).at(-1)).toBe('InstallVerificationFailed');
    expect(rig.names(602)).not.toContain('Installed');
    expect(path.isAbsolute(swu.targetImage)).toBe(true);
  });
});
