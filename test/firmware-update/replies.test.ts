/**
 * Immediate replies to update_firmware through the broker: InvalidCertificate, Rejected for
 * hostile or invalid requests, disk space and policy, and what the log says about them.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { tempDir } from '../helpers/daemon.js';
import { nodeScript, runDaemon, serveImage, startRig } from './harness.js';
import { makeCa, makeSelfSigned, makeSigner, signFile } from './pki.js';

describe('update_firmware replies', () => {
  it('answers InvalidCertificate for unparsable, expired and foreign certificates, and accepts one chaining to the anchor', async () => {
    const dir = tempDir('fw-pki-');
    const ca = await makeCa(dir);
    const [good, expired, foreign] = await Promise.all([makeSigner(ca), makeSigner(ca, { expired: true }), makeSelfSigned(path.join(dir, 'f'))]);
    const rig = await startRig({ options: { trustAnchors: [ca.certFile] } });
    const daemon = await runDaemon(rig);
    const img = serveImage(rig);
    const file = path.join(dir, 'img');
    await fsp.writeFile(file, img.bytes);
    const req = async (id: number, cert: string, signer = good) =>
      rig.update({ location: img.url, request_id: id, signing_certificate: cert, signature: await signFile(file, signer) });

    expect(await req(1, '-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----\n')).toBe('InvalidCertificate');
    expect(await req(2, expired.certPem, expired)).toBe('InvalidCertificate');
    expect(await req(3, foreign.certPem, foreign)).toBe('InvalidCertificate');
    await daemon.waitForLog(/does not chain to a configured trust anchor/);
    await daemon.waitForLog(/expired/);
    expect(rig.names()).toEqual([]);
    expect(await req(4, good.certPem)).toBe('Accepted');
    await rig.waitFw('SignatureVerified', 4);
  });

  it('rejects hostile locations with a log line that carries no credentials', async () => {
    const rig = await startRig();
    const daemon = await runDaemon(rig);
    const hostile = [
      'file:///etc/shadow',
      'javascript:alert(document.cookie)',
      'http://admin:hunter2@127.0.0.1/fw.bin;`reboot`',
      'http://admin:hunter2@127.0.0.1/fw.bin|sh',
      'ftp://admin:hunter2@$(reboot)/fw.bin',
      'http://127.0.0.1/fw.bin\nreboot',
      `https://admin:hunter2@127.0.0.1/${'a'.repeat(5000)}`,
      'gopher://127.0.0.1/fw.bin',
      '',
    ];
    for (const [i, location] of hostile.entries()) {
      expect(await rig.update({ location, request_id: 100 + i }), location.slice(0, 60)).toBe('Rejected');
    }
    expect(await rig.update({ request_id: 200 })).toBe('Rejected');
    expect(await rig.update({ location: 'http://127.0.0.1/fw.bin', request_id: 'x' })).toBe('Rejected');
    expect(await rig.update({ location: 'http://127.0.0.1/fw.bin', request_id: 201, install_timestamp: 'soon' })).toBe('Rejected');
    expect(await rig.update({ location: 'http://127.0.0.1/fw.bin', request_id: 202, signature: 'AAAA' })).toBe('Rejected');
    // every refusal has a warning saying why: the plugin's, or the core's for payloads outside the contract
    // (the core's request lines are written in batches, shortly after the replies)
    const rejected = () => daemon.logs.filter((l) => l.level >= 40 && (/update_firmware rejected/.test(String(l.msg)) || l.outcome === 'rejected'));
    await vi.waitFor(() => expect(rejected().length).toBe(hostile.length + 4));
    expect(daemon.logText()).not.toMatch(/hunter2|admin/);
    expect(rig.names()).toEqual([]);
    // the daemon is still fine
    const img = serveImage(rig);
    expect(await rig.update({ location: img.url, request_id: 300 })).toBe('Accepted');
    await rig.waitFw('Downloaded', 300);
  });

  it('rejects when the free disk space is below minFreeBytes, and unsigned requests when requireSignature is set', async () => {
    const rig = await startRig({ options: { minFreeBytes: Number.MAX_SAFE_INTEGER } });
    const daemon = await runDaemon(rig);
    const img = serveImage(rig);
    expect(await rig.update({ location: img.url, request_id: 1 })).toBe('Rejected');
    await daemon.waitForLog(/not enough free disk space/);
    expect(rig.http.requests).toHaveLength(0);
    await daemon.stop();

    const strict = await runDaemon(rig, { plugins: [{ name: 'firmware-update', options: { requireSignature: true } }] });
    expect(await rig.update({ location: img.url, request_id: 2 })).toBe('Rejected');
    await strict.waitForLog(/requireSignature/);
    expect(rig.names()).toEqual([]);
  });

  it('reports InstallVerificationFailed when the installer rejects the image (InstallationFailed on 1.6 plain)', async () => {
    const dir = tempDir('fw-script-');
    const script = nodeScript(dir, 'install', `console.log('Installing'); console.log('InstallVerificationFailed'); process.exit(1);`);
    const rig = await startRig({ installer: { type: 'script', command: [script, '{file}'] }, options: { installPermission: 'proceed' } });
    await runDaemon(rig);
    const img = serveImage(rig);
    expect(await rig.update({ location: img.url, request_id: 12 })).toBe('Accepted');
    await rig.waitFw('InstallVerificationFailed', 12);
    expect(rig.names(12)).toEqual(['Downloading', 'Downloaded', 'Installing', 'InstallVerificationFailed']);
    expect(await rig.update({ location: img.url, request_id: -1 })).toBe('Accepted');
    await rig.waitFw('InstallationFailed', -1);
    expect(rig.names(-1)).toEqual(['Downloading', 'Downloaded', 'Installing', 'InstallationFailed']);
  });

  it('gives up with InstallationFailed when permission does not arrive within permissionTimeoutS', async () => {
    const rig = await startRig({ options: { permissionTimeoutS: 1 } });
    const daemon = await runDaemon(rig);
    const img = serveImage(rig);
    expect(await rig.update({ location: img.url, request_id: 13 })).toBe('Accepted');
    await rig.waitFw('InstallationFailed', 13);
    expect(rig.names(13)).toEqual(['Downloading', 'Downloaded', 'InstallationFailed']);
    // measured on the daemon's own clock: delivery to EVerest can lag on a loaded machine
    const gaveUp = await daemon.waitForLog(/did not arrive in time/);
    const downloaded = await daemon.waitForLog((l) => l.msg === 'status' && l.firmware_update_status === 'Downloaded');
    expect(Date.parse(String(gaveUp.time)) - Date.parse(String(downloaded.time))).toBeGreaterThanOrEqual(950);
  });

  it('a burst of requests under a short timeout: one answered Rejected never runs, the last one accepted does', async () => {
    const rig = await startRig({ options: { installPermission: 'proceed' } });
    const daemon = await runDaemon(rig, { requestTimeoutMs: 50 });
    const img = serveImage(rig, 256 * 1024, '/fw.bin', { throttleBytesPerSec: 512 * 1024 });
    const ids = Array.from({ length: 30 }, (_, i) => 100 + i);
    // published in order on one connection, so they reach the daemon in this order
    const replies = await Promise.all(ids.map((id) => rig.update({ location: img.url, request_id: id })));
    const accepted = ids.filter((_, i) => replies[i] !== 'Rejected');
    const rejected = ids.filter((_, i) => replies[i] === 'Rejected');
    process.stdout.write(`burst: ${accepted.length} accepted, ${rejected.length} got the safe reply\n`);
    expect(accepted.length).toBeGreaterThan(0);
    const last = accepted.at(-1)!;
    await rig.waitFw('Installed', last, 30_000);
    for (const id of rejected) expect(rig.names(id), `request ${id} was answered Rejected`).toEqual([]);
    expect(replies.filter((r) => r !== 'Rejected').slice(1).every((r) => r === 'AcceptedCanceled')).toBe(true);
    for (const id of accepted.slice(0, -1)) expect(rig.names(id)).not.toContain('Installed');
    expect(daemon.logs.filter((l) => /not started/.test(String(l.msg))).length).toBe(rejected.length);
  });
});
