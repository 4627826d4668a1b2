/**
 * Broker authentication and TLS, against a real mosquitto configured for them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { startMosquitto } from '../helpers/mosquitto.js';
import { EverestSim } from '../helpers/everest.js';
import { REPO_ROOT, startDaemon, tempDir } from '../helpers/daemon.js';

const PLUGIN = path.join(REPO_ROOT, 'test/assets/wire-plugin.ts');

async function pki(dir: string) {
  const run = (args: string[]) => execa('openssl', args, { cwd: dir });
  await run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=Test MQTT CA']);
  await run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '30', '-extfile', 'san.ext']);
  await run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=charger-001']);
  await run(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '30']);
  // a second CA the daemon must not trust
  await run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.crt', '-days', '30', '-subj', '/CN=Other CA']);
  const p = (f: string) => path.join(dir, f);
  return { ca: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key'), otherCa: p('other.crt') };
}

describe('broker credentials and TLS', () => {
  test('username/password: the right ones connect, wrong ones are refused and never logged', async () => {
    const dir = tempDir();
    const passwd = path.join(dir, 'passwd');
    await execa('mosquitto_passwd', ['-c', '-b', passwd, 'charger', 's3cret-pw']);
    const broker = await startMosquitto({ extraConfig: ['allow_anonymous false', `password_file ${passwd}`] });
    try {
      const ok = await startDaemon({ mqtt: { url: broker.url, username: 'charger', password: 's3cret-pw' }, plugins: [{ name: 'wire', module: PLUGIN }] });
      const ev = await EverestSim.connect(broker.url, { mqtt: { username: 'charger', password: 's3cret-pw' } });
      expect(await ev.request('get_boot_reason')).toBe('PowerUp');
      await ok.stop();

      const bad = await startDaemon(
        { mqtt: { url: broker.url, username: 'charger', password: 'wrong-pw-123' }, plugins: [{ name: 'wire', module: PLUGIN }] },
        { waitConnected: false },
      );
      await bad.waitForLog((l) => l.msg === 'MQTT error' && /Not authorized|not authori[sz]ed|Bad User Name or Password/i.test(String(l.error)));
      expect(bad.daemon.connected).toBe(false);
      expect(bad.logText()).not.toContain('wrong-pw-123');
    } finally {
      await broker.stop();
    }
  });

  test('TLS with mutual authentication; a broker signed by an untrusted CA is refused', async () => {
    const dir = tempDir();
    const k = await pki(dir);
    const broker = await startMosquitto({
      extraConfig: [`cafile ${k.ca}`, `certfile ${k.serverCert}`, `keyfile ${k.serverKey}`, 'require_certificate true', 'use_identity_as_username true', 'tls_version tlsv1.2'],
    });
    const url = `mqtts://127.0.0.1:${broker.port}`;
    try {
      const d = await startDaemon({
        mqtt: { url, tls: { ca: k.ca, cert: k.clientCert, key: k.clientKey } },
        plugins: [{ name: 'wire', module: PLUGIN }],
      });
      const ev = await EverestSim.connect(url, { mqtt: { ca: readFileSync(k.ca), cert: readFileSync(k.clientCert), key: readFileSync(k.clientKey) } });
      expect(await ev.request('is_reset_allowed', 'Soft')).toBe(true);
      await d.stop();

      const untrusting = await startDaemon(
        { mqtt: { url, tls: { ca: k.otherCa, cert: k.clientCert, key: k.clientKey } }, plugins: [{ name: 'wire', module: PLUGIN }] },
        { waitConnected: false },
      );
      await untrusting.waitForLog((l) => l.msg === 'MQTT error' && /certificate|self.signed|unable to verify/i.test(String(l.error)));
      expect(untrusting.daemon.connected).toBe(false);
    } finally {
      await broker.stop();
    }
  });
});

describe('third-party modules by package name', () => {
  test('a package that is not a plugin is refused with its name', async () => {
    await expect(startDaemon({ mqtt: { url: 'mqtt://127.0.0.1:1' }, plugins: [{ name: 'colours', module: 'picocolors' }] }, { waitConnected: false })).rejects.toThrow(
      /plugin "colours" \(picocolors\) does not default-export a plugin class/,
    );
  });
});
