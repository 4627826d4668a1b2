/**
 * The real `everest-system probe` command line (a few spawned runs for exit codes and --json),
 * `probe firmware-sign` against openssl, and the errors a user meets: broker unreachable,
 * no reply, bad options. Never a stack trace, never a password.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../helpers/daemon.js';
import { freePort, startMosquitto, type Broker } from '../helpers/mosquitto.js';
import { daemonOn, moduleId, probeDone } from './harness.js';

let broker: Broker;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

const NO_OPENSSL_CONF = { ...process.env, OPENSSL_CONF: '/dev/null' };

function cli(args: string[]) {
  return execa(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'core/cli.ts'), 'probe', ...args], { cwd: REPO_ROOT, reject: false, timeout: 60_000 });
}

describe('everest-system probe (spawned)', () => {
  it('exit codes and --json lines of the real command line', async () => {
    const d = await daemonOn(broker.url);
    const closed = await freePort();
    const [ok, unreachable, usage] = await Promise.all([
      cli(['boot-reason', '--url', broker.url, '--module-id', d.moduleId, '--json']),
      cli(['is-reset-allowed', 'Soft', '--url', `mqtt://operator:Sup3rSecret@127.0.0.1:${closed}`, '--connect-timeout-s', '1']),
      cli(['update-firmware', '--url', broker.url, '--request-id', 'seven', '--location', 'http://127.0.0.1:1/fw.bin']),
    ]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    const lines = ok.stdout.split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.event)).toEqual(expect.arrayContaining(['connected', 'request', 'reply', 'end']));
    expect(lines.at(-1)).toMatchObject({ event: 'end', ok: true, exit_code: 0 });

    expect(unreachable.exitCode).toBe(2);
    expect(unreachable.stderr).toContain(`cannot reach the MQTT broker at mqtt://127.0.0.1:${closed} within 1 s`);
    expect(unreachable.stderr + unreachable.stdout).not.toContain('Sup3rSecret');
    expect(unreachable.stderr).not.toMatch(/\n\s+at /);

    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toContain("option '--request-id <id>' argument 'seven' is invalid");
    expect(usage.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('probe errors', () => {
  it('broker unreachable: exit 2 with the reason, in --json as the end event too', async () => {
    const closed = await freePort();
    const r = await probeDone(['set-time', '--url', `mqtt://127.0.0.1:${closed}`, '--connect-timeout-s', '0.5', '--json']);
    expect(r.code).toBe(2);
    expect(r.events()).toEqual([expect.objectContaining({ event: 'end', ok: false, exit_code: 2, message: expect.stringContaining('ECONNREFUSED') })]);
  });

  it('broker credentials: accepted from --password or the environment; refused at once with exit 2, the password never shown', async () => {
    const dir = tempDir('probe-auth-');
    const passwd = path.join(dir, 'passwd');
    await execa('mosquitto_passwd', ['-c', '-b', passwd, 'probe-user', 'Pr0be-Secret']);
    const secured = await startMosquitto({ extraConfig: ['allow_anonymous false', `password_file ${passwd}`] });
    try {
      const id = moduleId();
      // nobody answers this module: a connection that works ends in "no reply" (3), a refused one in 2
      const ok = await probeDone(['boot-reason', '--url', secured.url, '--username', 'probe-user', '--password', 'Pr0be-Secret', '--module-id', id, '--timeout-s', '0.3']);
      expect(ok.code, ok.err()).toBe(3);
      process.env.EVEREST_SYSTEM_MQTT_PASSWORD = 'Pr0be-Secret';
      const fromEnv = await probeDone(['boot-reason', '--url', secured.url, '--username', 'probe-user', '--module-id', id, '--timeout-s', '0.3']).finally(() => delete process.env.EVEREST_SYSTEM_MQTT_PASSWORD);
      expect(fromEnv.code, fromEnv.err()).toBe(3);
      const started = Date.now();
      const refused = await probeDone(['boot-reason', '--url', `mqtt://probe-user:Wr0ng-Secret@127.0.0.1:${secured.port}`, '--connect-timeout-s', '20', '--json']);
      expect(refused.code).toBe(2);
      expect(Date.now() - started).toBeLessThan(10_000); // not retried until the connect timeout
      expect(refused.err()).toMatch(/refused the connection: .*(authori[sz]ed|password)/i);
      expect(refused.out() + refused.err()).not.toContain('Wr0ng-Secret');
    } finally {
      await secured.stop();
    }
  });

  it('no reply: exit 3 naming the default EVerest would use', async () => {
    const r = await probeDone(['upload-logs', '--url', broker.url, '--module-id', moduleId(), '--location', 'http://127.0.0.1:1/x', '--reply-timeout-s', '0.5']);
    expect(r.code).toBe(3);
    expect(r.err()).toContain('no reply to upload_logs within 0.5 s (EVerest would use its default: {"upload_logs_status":"Rejected"})');
  });

  it('bad input is refused before anything is sent', async () => {
    const cases: [string[], string][] = [
      [['set-time', 'yesterday'], 'RFC 3339'],
      [['update-firmware', '--location', 'x', '--key', 'k.pem'], '--key and --image sign the update; they need --signed-by CERT'],
      [['update-firmware', '--location', 'x', '--ocpp16', '--request-id', '3'], '--ocpp16 sends request_id -1'],
      [['reset', 'Warm'], 'Allowed choices are Soft, Hard, NotSpecified'],
      [['boot-reason', '--url', 'http://127.0.0.1:1'], 'unsupported scheme http:'],
      [['boot-reason', '--module-id', 'a/b'], 'cannot be part of an MQTT topic'],
      [['boot-reason', '--config', '/nonexistent/plugins.config.json'], 'cannot read config'],
    ];
    for (const [args, message] of cases) {
      const r = await probeDone(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err(), args.join(' ')).toContain(message);
    }
  });
});

describe('probe firmware-sign', () => {
  it('prints the same base64 RSA signature openssl makes; --json adds the certificate; a key of another certificate is refused', async () => {
    const dir = tempDir('probe-sign-');
    const p = (n: string) => path.join(dir, n);
    await fsp.writeFile(p('fw.bin'), randomBytes(100_000));
    for (const n of ['a', 'b']) {
      await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p(`${n}.key`), '-out', p(`${n}.pem`), '-days', '2', '-subj', `/CN=signer ${n}`], { env: NO_OPENSSL_CONF });
    }
    await execa('openssl', ['dgst', '-sha256', '-sign', p('a.key'), '-out', p('fw.sig'), p('fw.bin')], { env: NO_OPENSSL_CONF });
    const expected = (await fsp.readFile(p('fw.sig'))).toString('base64');

    const plain = await probeDone(['firmware-sign', '--image', p('fw.bin'), '--key', p('a.key')]);
    expect(plain.code).toBe(0);
    expect(plain.out()).toBe(`${expected}\n`);

    const json = await probeDone(['firmware-sign', '--image', p('fw.bin'), '--key', p('a.key'), '--cert', p('a.pem'), '--json']);
    expect(json.code).toBe(0);
    expect(json.events()).toEqual([{ event: 'signature', signature: expected, signing_certificate: await fsp.readFile(p('a.pem'), 'utf8'), key_type: 'rsa' }]);

    const mismatch = await probeDone(['firmware-sign', '--image', p('fw.bin'), '--key', p('a.key'), '--cert', p('b.pem')]);
    expect(mismatch.code).toBe(2);
    expect(mismatch.err()).toContain('does not belong to the certificate');
    const missing = await probeDone(['firmware-sign', '--image', p('nope.bin'), '--key', p('a.key')]);
    expect(missing.code).toBe(2);
    expect(missing.err()).toContain('cannot read image');
  });

  it('an EC signature verifies with openssl', async () => {
    const dir = tempDir('probe-sign-ec-');
    const p = (n: string) => path.join(dir, n);
    await fsp.writeFile(p('fw.bin'), randomBytes(10_000));
    await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', p('ec.key'), '-out', p('ec.pem'), '-days', '2', '-subj', '/CN=ec signer'], { env: NO_OPENSSL_CONF });
    const r = await probeDone(['firmware-sign', '--image', p('fw.bin'), '--key', p('ec.key'), '--cert', p('ec.pem')]);
    expect(r.code).toBe(0);
    await fsp.writeFile(p('fw.sig'), Buffer.from(r.out().trim(), 'base64'));
    await execa('openssl', ['x509', '-in', p('ec.pem'), '-pubkey', '-noout', '-out', p('ec.pub')], { env: NO_OPENSSL_CONF });
    const v = await execa('openssl', ['dgst', '-sha256', '-verify', p('ec.pub'), '-signature', p('fw.sig'), p('fw.bin')], { env: NO_OPENSSL_CONF, reject: false });
    expect(v.stdout).toContain('Verified OK');
  });
});
