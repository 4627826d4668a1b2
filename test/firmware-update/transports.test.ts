/**
 * Download transports and schedules across restarts, end to end: FTP with a broken transfer
 * resumed by REST, FTPS and HTTPS verified against the CA given in the plugin's `tls.ca`, an
 * untrusted HTTPS server refused, and a scheduled download that survives a daemon restart.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '../helpers/daemon.js';
import { startFtpServer } from '../helpers/ftp-server.js';
import { startHttpServer } from '../helpers/http-server.js';
import { runDaemon, serveImage, sha256, startRig } from './harness.js';

const slotB = (stateDir: string) => fsp.readFile(path.join(stateDir, 'adapters', 'simulated-installer', 'slot-b'));

describe('firmware-update transports', () => {
  it('FTP: a transfer that breaks is resumed with REST (DownloadPaused in between), credentials never logged', async () => {
    const ftp = await startFtpServer({ user: 'fwuser', password: 'ftp-s3cret', faults: { abortRetrAfterBytes: 40 * 1024 } });
    onTestFinished(() => ftp.close());
    const bytes = randomBytes(128 * 1024);
    await fsp.writeFile(path.join(ftp.root, 'fw.bin'), bytes);
    const rig = await startRig({ options: { installPermission: 'proceed' } });
    const daemon = await runDaemon(rig);
    expect(await rig.update({ location: `${ftp.url}/fw.bin`, request_id: 31, retry_interval_s: 1 })).toBe('Accepted');
    await rig.waitFw('Installed', 31);
    expect(rig.names(31)).toEqual(['Downloading', 'DownloadPaused', 'Downloading', 'Downloaded', 'Installing', 'Installed']);
    expect(ftp.retrOffsets).toHaveLength(2);
    expect(ftp.retrOffsets[0]).toBe(0);
    expect(ftp.retrOffsets[1]).toBeGreaterThan(0);
    expect(sha256(await slotB(rig.stateDir))).toBe(sha256(bytes));
    expect(daemon.logText()).not.toContain('ftp-s3cret');
  });

  it('FTPS and HTTPS are verified against tls.ca; an HTTPS server nobody trusts gives DownloadFailed', async () => {
    const ftps = await startFtpServer({ tls: 'explicit' });
    onTestFinished(() => ftps.close());
    const https = await startHttpServer({ https: true });
    onTestFinished(() => https.close());
    const untrusted = await startHttpServer({ https: true });
    onTestFinished(() => untrusted.close());
    const dir = tempDir('fw-ca-');
    const caFiles = [path.join(dir, 'ftps-ca.pem'), path.join(dir, 'https-ca.pem')];
    await fsp.writeFile(caFiles[0]!, ftps.caPem!);
    await fsp.writeFile(caFiles[1]!, https.caPem!);
    const bytes = randomBytes(32 * 1024);
    await fsp.writeFile(path.join(ftps.root, 'fw.bin'), bytes);
    https.serve('/fw.bin', bytes);
    untrusted.serve('/fw.bin', bytes);

    const rig = await startRig({ options: { installPermission: 'proceed', tls: { ca: caFiles } } });
    await runDaemon(rig);
    expect(await rig.update({ location: `${ftps.url.replace(/^ftp:/, 'ftps:')}/fw.bin`, request_id: 32 })).toBe('Accepted');
    await rig.waitFw('Installed', 32);
    expect(await rig.update({ location: `${https.url}/fw.bin`, request_id: 33 })).toBe('Accepted');
    await rig.waitFw('Installed', 33);
    expect(await rig.update({ location: `${untrusted.url}/fw.bin`, request_id: 34, retries: 1 })).toBe('Accepted');
    await rig.waitFw('DownloadFailed', 34);
    expect(rig.names(34)).toEqual(['Downloading', 'DownloadFailed']);
    expect(untrusted.requests).toHaveLength(0);
  });

  it('a scheduled download survives a daemon restart and starts at retrieve_timestamp', async () => {
    const rig = await startRig({ options: { installPermission: 'proceed' } });
    const first = await runDaemon(rig);
    const img = serveImage(rig);
    const retrieveAt = Date.now() + 2500;
    expect(await rig.update({ location: img.url, request_id: 35, retrieve_timestamp: new Date(retrieveAt).toISOString() })).toBe('Accepted');
    await rig.waitFw('DownloadScheduled', 35);
    await first.stop();
    await runDaemon(rig);
    await rig.http.waitForRequest((r) => r.url === '/fw.bin');
    expect(Date.now()).toBeGreaterThanOrEqual(retrieveAt - 50);
    await rig.waitFw('Installed', 35);
    expect(rig.names(35)).toEqual(['DownloadScheduled', 'DownloadScheduled', 'Downloading', 'Downloaded', 'Installing', 'Installed']);
  });
});
