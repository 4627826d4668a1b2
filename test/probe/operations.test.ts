/**
 * `probe` against the real daemon (in-process, simulated adapters) over a real mosquitto, with a
 * real HTTP server on loopback for firmware images and log uploads.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/daemon.js';
import { startHttpServer, type TestHttpServer } from '../helpers/http-server.js';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { daemonOn, probe, probeDone, statuses, until } from './harness.js';

let broker: Broker;
let http: TestHttpServer;

beforeAll(async () => {
  broker = await startMosquitto();
  http = await startHttpServer();
});
afterAll(async () => {
  await http.close();
  await broker.stop();
});

function image(name: string, bytes = randomBytes(32 * 1024)): { url: string; bytes: Buffer } {
  http.serve(`/${name}`, bytes);
  return { url: `${http.url}/${name}`, bytes };
}

describe('probe update-firmware', () => {
  it('unsigned: reply, Downloading, Downloaded, allow_firmware_installation as libocpp sends it, Installing, Installed; exit 0', async () => {
    const d = await daemonOn(broker.url);
    const img = image('fw-unsigned.bin');
    const r = await probeDone(['update-firmware', ...d.flags, '--location', img.url, '--request-id', '17', '--json']);
    expect(r.code, r.err()).toBe(0);
    const ev = r.events();
    expect(ev.find((e) => e.event === 'request')).toMatchObject({ op: 'update_firmware', payload: { location: img.url, request_id: 17 } });
    expect(ev.find((e) => e.event === 'reply')).toMatchObject({ op: 'update_firmware', value: 'Accepted' });
    expect(statuses(ev)).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
    // the permission goes out right after Downloaded (zero bytes), before Installing
    const names = ev.filter((e) => e.event === 'status' || e.event === 'command').map((e) => (e.event === 'command' ? `cmd:${String(e.op)}` : e.status));
    expect(names).toEqual(['Downloading', 'Downloaded', 'cmd:allow_firmware_installation', 'Installing', 'Installed']);
    expect(ev.find((e) => e.event === 'command')).toMatchObject({ bytes: 0 });
    expect(ev.at(-1)).toMatchObject({ event: 'end', ok: true, exit_code: 0, result: 'Installed' });
    // every line is an object with an event and a time
    for (const e of ev) expect(typeof e.t).toBe('string');
  });

  it('signed with an openssl-made EC key and certificate: SignatureVerified triggers the permission; human output', async () => {
    const d = await daemonOn(broker.url);
    const dir = tempDir('probe-pki-');
    const key = path.join(dir, 'signer.key');
    const cert = path.join(dir, 'signer.pem');
    await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=probe firmware signer'], { env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
    const img = image('fw-signed.bin');
    const file = path.join(dir, 'fw-signed.bin');
    await fsp.writeFile(file, img.bytes);
    const r = await probeDone(['update-firmware', ...d.flags, '--location', img.url, '--request-id', '23', '--signed-by', cert, '--key', key, '--image', file]);
    expect(r.code, r.err()).toBe(0);
    const out = r.out();
    const order = ['update_firmware', 'reply Accepted', 'firmware_update_status SignatureVerified', 'allow_firmware_installation', 'firmware_update_status Installed', '✔ Installed (request 23)'];
    let at = 0;
    for (const needle of order) {
      const i = out.indexOf(needle, at);
      expect(i, `"${needle}" after position ${at} in:\n${out}`).toBeGreaterThanOrEqual(0);
      at = i;
    }
    expect(out).toContain('as libocpp does after SignatureVerified');
    expect(out).not.toContain('\x1b['); // not a terminal: no colour
  });

  it('a failing download ends with DownloadFailed and exit 1', async () => {
    const d = await daemonOn(broker.url);
    http.serve('/fw-broken.bin', Buffer.from('x'), { failStatus: 404, failCount: Infinity });
    const r = await probeDone(['update-firmware', ...d.flags, '--location', `${http.url}/fw-broken.bin`, '--request-id', '31', '--retries', '1', '--json']);
    expect(r.code).toBe(1);
    expect(statuses(r.events())).toEqual(['Downloading', 'DownloadFailed']);
    expect(r.events().at(-1)).toMatchObject({ event: 'end', ok: false, exit_code: 1, result: 'DownloadFailed' });
    expect(r.err()).toContain('firmware update 31 failed: DownloadFailed');
  });

  it('with a reboot: reports InstallRebooting, keeps waiting through the restart (check switched off, then Installed); --until-rebooting stops there', async () => {
    const d = await daemonOn(broker.url, {}, { type: 'simulated', rebootRequired: true });
    const img = image('fw-reboot.bin');
    const run = probe(['update-firmware', ...d.flags, '--location', img.url, '--request-id', '41', '--json']);
    await until(() => statuses(run.events()).includes('InstallRebooting'), 20_000, 'InstallRebooting', run.out);
    await until(async () => (await d.powerCalls()).includes('reboot'), 10_000, 'the simulated reboot');
    // the "reboot": the daemon stops (communication_check false) and starts again on the same state
    await d.restart();
    expect(await run.done, run.err()).toBe(0);
    const ev = run.events();
    expect(statuses(ev)).toEqual(['Downloading', 'Downloaded', 'Installing', 'InstallRebooting', 'Installed']);
    expect(ev).toContainEqual(expect.objectContaining({ event: 'comm_check', state: 'off', value: false }));

    const img2 = image('fw-reboot2.bin');
    const r2 = await probeDone(['update-firmware', ...d.flags, '--location', img2.url, '--request-id', '42', '--until-rebooting', '--json']);
    expect(r2.code, r2.err()).toBe(0);
    expect(statuses(r2.events()).at(-1)).toBe('InstallRebooting');
    expect(r2.events().at(-1)).toMatchObject({ event: 'end', ok: true, result: 'InstallRebooting' });
  });

  it('--no-allow holds the update at Downloaded; --timeout-s ends it with exit 4 naming the last status', async () => {
    const d = await daemonOn(broker.url);
    const img = image('fw-hold.bin');
    const r = await probeDone(['update-firmware', ...d.flags, '--location', img.url, '--request-id', '51', '--no-allow', '--timeout-s', '2', '--json']);
    expect(r.code).toBe(4);
    expect(statuses(r.events())).toEqual(['Downloading', 'Downloaded']);
    expect(r.events().some((e) => e.event === 'command')).toBe(false);
    expect(r.err()).toContain('no end state within 2 s (last firmware_update_status: Downloaded)');
    // the daemon is still waiting for the permission: allow-installation completes it
    const allow = await probeDone(['allow-installation', ...d.flags, '--json']);
    expect(allow.code).toBe(0);
    expect(allow.events().find((e) => e.event === 'command')).toMatchObject({ op: 'allow_firmware_installation', bytes: 0 });
    const w = probe(['watch', ...d.flags, '--json', '--duration-s', '20']);
    await until(() => w.events().some((e) => e.event === 'message' && (e.payload as { firmware_update_status?: string } | null)?.firmware_update_status === 'Installed'), 15_000, 'Installed', w.out);
    w.abort();
    expect(await w.done).toBe(0);
  });

  it('Ctrl-C ends a running update with exit 130 and the last status', async () => {
    const d = await daemonOn(broker.url);
    const img = image('fw-ctrl-c.bin');
    const run = probe(['update-firmware', ...d.flags, '--location', img.url, '--request-id', '71', '--no-allow', '--json']);
    await until(() => statuses(run.events()).includes('Downloaded'), 15_000, 'Downloaded', run.out);
    run.abort();
    expect(await run.done).toBe(130);
    expect(run.events().at(-1)).toMatchObject({ event: 'end', ok: false, exit_code: 130, result: 'Downloaded', message: 'interrupted (last firmware_update_status: Downloaded)' });
  });

  it('--ocpp16 sends request_id -1 and follows the statuses of -1', async () => {
    const d = await daemonOn(broker.url);
    const img = image('fw-16.bin');
    const r = await probeDone(['update-firmware', ...d.flags, '--location', img.url, '--ocpp16', '--json']);
    expect(r.code, r.err()).toBe(0);
    expect(r.events().find((e) => e.event === 'request')).toMatchObject({ payload: { request_id: -1 } });
    expect(r.events().filter((e) => e.event === 'status').every((e) => e.request_id === -1)).toBe(true);
    expect(statuses(r.events()).at(-1)).toBe('Installed');
  });
});

describe('probe upload-logs', () => {
  /** a small log file as the only source (system-snapshot takes seconds on a busy machine) */
  async function logDaemon() {
    const dir = tempDir('probe-logs-');
    await fsp.writeFile(path.join(dir, 'charger.log'), 'boot\ncharging session started\n');
    const adapters = { installer: { type: 'simulated' }, power: { type: 'simulated' }, logSources: [{ type: 'files', paths: [path.join(dir, '*.log')] }] };
    return daemonOn(broker.url, { adapters, plugins: ['log-upload'] });
  }

  it('uploads to the HTTP server: reply with the file name, Uploading, Uploaded, exit 0', async () => {
    const d = await logDaemon();
    const before = http.uploads.length;
    const r = await probeDone(['upload-logs', ...d.flags, '--location', `${http.url}/logs/`, '--request-id', '9', '--since', '2020-01-01T00:00:00Z', '--until', '-0s', '--json']);
    expect(r.code, r.err() + r.out()).toBe(0);
    const reply = r.events().find((e) => e.event === 'reply')!;
    const fileName = (reply.value as { file_name: string }).file_name;
    expect(reply.value).toMatchObject({ upload_logs_status: 'Accepted' });
    expect(statuses(r.events())).toEqual(['Uploading', 'Uploaded']);
    expect(r.events().at(-1)).toMatchObject({ event: 'end', ok: true, result: { status: 'Uploaded', file_name: fileName } });
    expect(http.uploads.slice(before).map((u) => u.name)).toEqual([fileName]);
    const sent = r.events().find((e) => e.event === 'request')!.payload as Record<string, string>;
    expect(sent).toMatchObject({ type: 'DiagnosticsLog', request_id: 9, oldest_timestamp: '2020-01-01T00:00:00Z' });
    expect(Math.abs(Date.parse(sent.latest_timestamp!) - Date.now())).toBeLessThan(60_000); // "-0s": relative to now
  });

  it('without --request-id the request carries none and the statuses of -1 are followed; a refused upload exits 1', async () => {
    const d = await logDaemon();
    http.route('/denied/', { failStatus: 403, failCount: Infinity });
    const r = await probeDone(['upload-logs', ...d.flags, '--location', `${http.url}/denied/`, '--retries', '1', '--json']);
    expect(r.code).toBe(1);
    const req = r.events().find((e) => e.event === 'request')!;
    expect(req.payload).not.toHaveProperty('request_id');
    expect(r.events().filter((e) => e.event === 'status').every((e) => e.request_id === -1)).toBe(true);
    expect(r.events().at(-1)).toMatchObject({ event: 'end', ok: false, exit_code: 1 });
  });
});

describe('probe one-shot requests', () => {
  it('is-reset-allowed, reset (the simulated power adapter records it), set-time, boot-reason', async () => {
    const d = await daemonOn(broker.url);
    const allowed = await probeDone(['is-reset-allowed', 'Soft', ...d.flags, '--json']);
    expect(allowed.code).toBe(0);
    expect(allowed.events().find((e) => e.event === 'reply')).toMatchObject({ op: 'is_reset_allowed', value: true });

    const reset = await probeDone(['reset', 'Hard', '--scheduled', ...d.flags, '--json']);
    expect(reset.code).toBe(0);
    expect(reset.events().find((e) => e.event === 'command')).toMatchObject({ op: 'reset', payload: { type: 'Hard', scheduled: true } });
    await until(async () => (await d.powerCalls()).includes('reboot'), 10_000, 'the recorded reboot');

    const set = await probeDone(['set-time', '2031-02-03T04:05:06Z', ...d.flags, '--json']);
    expect(set.code).toBe(0);
    expect(set.events().find((e) => e.event === 'request')).toMatchObject({ op: 'set_system_time', payload: '2031-02-03T04:05:06Z' });
    expect(set.events().find((e) => e.event === 'reply')).toMatchObject({ value: true });
    const clock = JSON.parse(await fsp.readFile(path.join(d.stateDir, 'adapters', 'simulated-clock', 'clock.json'), 'utf8')) as { lastSet: string };
    expect(new Date(clock.lastSet).toISOString()).toBe('2031-02-03T04:05:06.000Z');

    const now = await probeDone(['set-time', ...d.flags, '--json']);
    expect(now.code).toBe(0);
    const sent = now.events().find((e) => e.event === 'request')!.payload as string;
    expect(Math.abs(Date.parse(sent) - Date.now())).toBeLessThan(60_000);

    const boot = await probeDone(['boot-reason', ...d.flags]);
    expect(boot.code).toBe(0);
    expect(boot.out()).toMatch(/reply "?(PowerUp|Unknown|ApplicationReset|RemoteReset|ScheduledReset|FirmwareUpdate|LocalReset|Watchdog|Triggered)/);
    expect(boot.out()).toMatch(/✔ boot reason \w+/);
  });

  it('honours --prefix and --module-id, also when taken from the daemon config with --config', async () => {
    const d = await daemonOn(broker.url, { mqtt: { url: broker.url, externalPrefix: 'site-7/' } });
    const base = ['--url', broker.url, '--heartbeat-ms', '200', '--timeout-s', '1.5', '--json'];
    const right = await probeDone(['boot-reason', ...base, '--module-id', d.moduleId, '--prefix', 'site-7/']);
    expect(right.code, right.err()).toBe(0);
    expect(right.events().find((e) => e.event === 'request')!.reply_to).toMatch(new RegExp(`^everest_api/1/system/${d.moduleId}/m2e/reply/`));
    const noPrefix = await probeDone(['boot-reason', ...base, '--module-id', d.moduleId]);
    expect(noPrefix.code).toBe(3);
    const otherModule = await probeDone(['boot-reason', ...base, '--module-id', 'someone_else', '--prefix', 'site-7/']);
    expect(otherModule.code).toBe(3);
    expect(otherModule.err()).toContain('no reply to get_boot_reason within 1.5 s (EVerest would use its default: "Unknown")');

    const cfgFile = path.join(tempDir('probe-cfg-'), 'plugins.config.json');
    await fsp.writeFile(cfgFile, JSON.stringify({ moduleId: d.moduleId, mqtt: { url: broker.url, externalPrefix: 'site-7/' } }));
    const fromConfig = await probeDone(['is-reset-allowed', 'NotSpecified', '--config', cfgFile, '--heartbeat-ms', '200', '--json']);
    expect(fromConfig.code, fromConfig.err()).toBe(0);
    expect(fromConfig.events()[0]).toMatchObject({ event: 'connected', module_id: d.moduleId, prefix: 'site-7/' });
  });

  it('colours statuses and replies and shows a live status line only on a terminal', async () => {
    const d = await daemonOn(broker.url);
    const tty = await probeDone(['is-reset-allowed', 'Hard', ...d.flags], { tty: true });
    expect(tty.code).toBe(0);
    expect(tty.out()).toContain('\x1b[32mtrue\x1b[39m');
    const json = await probeDone(['is-reset-allowed', 'Hard', ...d.flags, '--json'], { tty: true });
    expect(json.out()).not.toContain('\x1b[');
    // a live status line, redrawn in place, while an update runs
    const img = image('fw-tty.bin');
    const live = await probeDone(['update-firmware', ...d.flags, '--location', img.url, '--request-id', '61'], { tty: true });
    expect(live.code).toBe(0);
    expect(live.out()).toMatch(/firmware update 61: .*Downloading.*\r\x1b\[2K/);
    expect(live.out()).toContain('\x1b[32m✔ Installed (request 61)');
  });
});
