/**
 * The OCPP status sequences (shared ocpp-requirements.md §2 items 1-8) end to end: EverestSim
 * sends update_firmware / allow_firmware_installation through a real mosquitto to the daemon,
 * which downloads from a real HTTP server and installs with the simulated A/B installer.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/daemon.js';
import { leftovers, runDaemon, serveImage, sha256, startRig, until, type Rig } from './harness.js';
import { makeCa, makeSigner, signFile } from './pki.js';

const slot = (stateDir: string, s: 'a' | 'b') =>
  fsp.readFile(path.join(stateDir, 'adapters', 'simulated-installer', `slot-${s}`)).catch(() => undefined);

/** A request that is answered Rejected at once: once its reply is in, earlier commands were handled. */
const sync = async (rig: Rig) => expect(await rig.update({ location: 'file:///x', request_id: 999 })).toBe('Rejected');

async function signedImage(rig: Rig, size = 64 * 1024) {
  const dir = tempDir('fw-pki-');
  const ca = await makeCa(dir);
  const signer = await makeSigner(ca);
  const img = serveImage(rig, size);
  const file = path.join(dir, 'img');
  await fsp.writeFile(file, img.bytes);
  return { ...img, ca, signing_certificate: signer.certPem, signature: await signFile(file, signer) };
}

describe('firmware-update sequences', () => {
  it('1. signed update with reboot: ... SignatureVerified, Installing, InstallRebooting, then Installed after the restart', async () => {
    const rig = await startRig({ installer: { type: 'simulated', rebootRequired: true }, plugins: ['boot-reason'] });
    let daemon = await runDaemon(rig);
    const img = await signedImage(rig);
    const req = { location: img.url, request_id: 41, signature: img.signature, signing_certificate: img.signing_certificate };
    expect(await rig.update(req)).toBe('Accepted');
    await rig.waitFw('SignatureVerified', 41);
    expect(rig.names(41)).toEqual(['Downloading', 'Downloaded', 'SignatureVerified']);
    await rig.allow();
    await rig.waitFw('InstallRebooting', 41);
    await until(async () => (await rig.powerCalls()).length > 0, 5000, 'reboot');
    expect(await rig.powerCalls()).toEqual(['reboot']);
    expect(sha256(await slot(rig.stateDir, 'b'))).toBe(sha256(img.bytes));
    // the "reboot": the daemon starts again on the same state dir and boots the new slot
    await daemon.stop();
    daemon = await runDaemon(rig);
    await rig.waitFw('Installed', 41);
    expect(rig.names(41)).toEqual(['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'InstallRebooting', 'Installed']);
    expect(await rig.ev.request('get_boot_reason')).toBe('FirmwareUpdate');
    const sim = JSON.parse(await fsp.readFile(path.join(rig.stateDir, 'adapters', 'simulated-installer', 'state.json'), 'utf8'));
    expect(sim).toMatchObject({ booted: 'b', slots: { b: { good: true } } });
    // nothing left behind: no persisted update, no image
    await until(async () => (await leftovers(rig)).length === 0, 5000, 'cleanup');
  });

  it('2. unsigned 2.0.1 update: Downloading, Downloaded, (allow) Installing, Installed; repeated permission is harmless', async () => {
    const rig = await startRig();
    await runDaemon(rig);
    const img = serveImage(rig);
    expect(await rig.update({ location: img.url, request_id: 7 })).toBe('Accepted');
    await rig.waitFw('Downloaded', 7);
    await sync(rig);
    expect(rig.names(7)).toEqual(['Downloading', 'Downloaded']); // waits for permission
    await rig.allow();
    await rig.allow();
    await rig.waitFw('Installed', 7);
    await rig.allow();
    await sync(rig);
    expect(rig.names()).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
    expect(sha256(await slot(rig.stateDir, 'b'))).toBe(sha256(img.bytes));
  });

  it('2. OCPP 1.6 plain (request_id -1) with reboot: no InstallRebooting, Installed after the restart', async () => {
    const rig = await startRig({ installer: { type: 'simulated', rebootRequired: true } });
    const daemon = await runDaemon(rig);
    const img = serveImage(rig);
    expect(await rig.update({ location: img.url, request_id: -1 })).toBe('Accepted');
    await rig.waitFw('Downloaded', -1);
    await rig.allow();
    await rig.waitFw('Installing', -1);
    await until(async () => (await rig.powerCalls()).length > 0, 5000, 'reboot');
    await daemon.stop();
    await runDaemon(rig);
    await rig.waitFw('Installed', -1);
    expect(rig.names(-1)).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
  });

  it('3. download fails after every attempt: Downloading, DownloadFailed', async () => {
    const rig = await startRig();
    await runDaemon(rig);
    const img = serveImage(rig, 1000, '/fw.bin', { failStatus: 503, failCount: Infinity });
    expect(await rig.update({ location: img.url, request_id: 3, retries: 3, retry_interval_s: 0 })).toBe('Accepted');
    await rig.waitFw('DownloadFailed', 3);
    expect(rig.names(3)).toEqual(['Downloading', 'DownloadFailed']);
    expect(rig.http.requestsTo('/fw.bin')).toHaveLength(3);
  });

  it('4. invalid signature: Downloading, Downloaded, InvalidSignature, nothing installed; on 1.6 plain InstallationFailed', async () => {
    const rig = await startRig();
    await runDaemon(rig);
    const img = await signedImage(rig);
    rig.http.serve('/other.bin', Buffer.concat([img.bytes, Buffer.from('x')]));
    const other = `${rig.http.url}/other.bin`;
    const base = { signature: img.signature, signing_certificate: img.signing_certificate };
    expect(await rig.update({ location: other, request_id: 4, ...base })).toBe('Accepted');
    await rig.waitFw('InvalidSignature', 4);
    expect(rig.names(4)).toEqual(['Downloading', 'Downloaded', 'InvalidSignature']);
    expect(await rig.update({ location: other, request_id: -1, ...base })).toBe('Accepted');
    await rig.waitFw('InstallationFailed', -1);
    expect(rig.names(-1)).toEqual(['Downloading', 'Downloaded', 'InstallationFailed']);
    await rig.allow();
    await sync(rig);
    expect(await slot(rig.stateDir, 'b')).toBeUndefined();
  });

  it('5. install scheduled: SignatureVerified, InstallScheduled, early permission kept, Installing only at install_timestamp', async () => {
    const rig = await startRig();
    await runDaemon(rig);
    const img = await signedImage(rig);
    const installAt = Date.now() + 2500;
    const req = {
      location: img.url, request_id: 5, signature: img.signature, signing_certificate: img.signing_certificate,
      install_timestamp: new Date(installAt).toISOString(),
    };
    expect(await rig.update(req)).toBe('Accepted');
    await rig.waitFw('InstallScheduled', 5);
    await rig.allow(); // early: remembered
    const installing = rig.ev.nextMessage((m) => m.name === 'firmware_update_status' && (m.value as { firmware_update_status: string }).firmware_update_status === 'Installing', 10_000);
    await installing;
    expect(Date.now()).toBeGreaterThanOrEqual(installAt - 50);
    await rig.waitFw('Installed', 5);
    expect(rig.names(5)).toEqual(['Downloading', 'Downloaded', 'SignatureVerified', 'InstallScheduled', 'Installing', 'Installed']);
  });

  it('6. download scheduled: DownloadScheduled, nothing fetched before retrieve_timestamp, then the usual sequence; 1.6 plain omits it', async () => {
    const rig = await startRig({ options: { installPermission: 'proceed' } });
    await runDaemon(rig);
    const img = serveImage(rig);
    const retrieveAt = Date.now() + 1500;
    expect(await rig.update({ location: img.url, request_id: 6, retrieve_timestamp: new Date(retrieveAt).toISOString() })).toBe('Accepted');
    await rig.waitFw('DownloadScheduled', 6);
    const first = await rig.http.waitForRequest((r) => r.url === '/fw.bin');
    expect(Date.now()).toBeGreaterThanOrEqual(retrieveAt - 50);
    expect(first).toBeDefined();
    await rig.waitFw('Installed', 6);
    expect(rig.names(6)).toEqual(['DownloadScheduled', 'Downloading', 'Downloaded', 'Installing', 'Installed']);

    expect(await rig.update({ location: img.url, request_id: -1, retrieve_timestamp: new Date(Date.now() + 1000).toISOString() })).toBe('Accepted');
    await rig.waitFw('Installed', -1);
    expect(rig.names(-1)).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
  });

  it('7. new request while downloading: AcceptedCanceled, the old download stops and its id goes quiet', async () => {
    const rig = await startRig();
    await runDaemon(rig);
    serveImage(rig, 2 * 1024 * 1024, '/slow.bin', { throttleBytesPerSec: 200 * 1024 });
    const fast = serveImage(rig, 32 * 1024, '/fast.bin');
    expect(await rig.update({ location: `${rig.http.url}/slow.bin`, request_id: 70 })).toBe('Accepted');
    await rig.http.waitForRequest((r) => r.url === '/slow.bin');
    expect(await rig.update({ location: fast.url, request_id: 71 })).toBe('AcceptedCanceled');
    await rig.waitFw('Downloaded', 71);
    await rig.allow();
    await rig.waitFw('Installed', 71);
    expect(rig.names(70)).toEqual(['Downloading']);
    expect(rig.names(71)).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
    expect(sha256(await slot(rig.stateDir, 'b'))).toBe(sha256(fast.bytes));
    expect(rig.http.requestsTo('/slow.bin')).toHaveLength(1);
  });

  it('8. new request while waiting for permission: AcceptedCanceled; while installing: Rejected and the old one completes', async () => {
    const rig = await startRig({ installer: { type: 'simulated', rebootRequired: false, installDelayMs: 1500 }, plugins: ['reset'] });
    await runDaemon(rig);
    const a = serveImage(rig, 16 * 1024, '/a.bin');
    const b = serveImage(rig, 16 * 1024, '/b.bin');
    expect(await rig.update({ location: a.url, request_id: 80 })).toBe('Accepted');
    await rig.waitFw('Downloaded', 80);
    expect(await rig.update({ location: b.url, request_id: 81 })).toBe('AcceptedCanceled');
    await rig.waitFw('Downloaded', 81);
    await rig.allow();
    await rig.waitFw('Installing', 81);
    expect(await rig.ev.request('is_reset_allowed', 'Hard')).toBe(false);
    expect(await rig.update({ location: a.url, request_id: 82 })).toBe('Rejected');
    await rig.waitFw('Installed', 81);
    expect(await rig.ev.request('is_reset_allowed', 'Hard')).toBe(true);
    expect(rig.names(80)).toEqual(['Downloading', 'Downloaded']);
    expect(rig.names(81)).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
    expect(rig.names(82)).toEqual([]);
    expect(sha256(await slot(rig.stateDir, 'b'))).toBe(sha256(b.bytes));
  });

  it('a broken connection pauses and resumes with a Range request: DownloadPaused between Downloading (silent on 1.6 plain)', async () => {
    const rig = await startRig({ options: { installPermission: 'proceed' } });
    await runDaemon(rig);
    const img = serveImage(rig, 256 * 1024, '/fw.bin', { dropAfterBytes: 100 * 1024 });
    expect(await rig.update({ location: img.url, request_id: 9, retry_interval_s: 1 })).toBe('Accepted');
    await rig.waitFw('Installed', 9);
    expect(rig.names(9)).toEqual(['Downloading', 'DownloadPaused', 'Downloading', 'Downloaded', 'Installing', 'Installed']);
    expect(rig.http.requestsTo('/fw.bin').map((r) => r.headers.range)).toEqual([undefined, expect.stringMatching(/^bytes=\d+-$/)]);
    expect(sha256(await slot(rig.stateDir, 'b'))).toBe(sha256(img.bytes));
    // OCPP 1.6 plain has no DownloadPaused: the pause is silent there
    const again = serveImage(rig, 256 * 1024, '/fw2.bin', { dropAfterBytes: 100 * 1024 });
    expect(await rig.update({ location: again.url, request_id: -1, retry_interval_s: 1 })).toBe('Accepted');
    await rig.waitFw('Installed', -1);
    expect(rig.names(-1)).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
    expect(rig.http.requestsTo('/fw2.bin')).toHaveLength(2);
  });
});
