/**
 * The example third-party plugin and adapter (examples/vendor-installer/), loaded by path from a
 * config, exercised end to end through a real mosquitto: a firmware update through the built-in
 * firmware-update plugin, downloaded from a loopback HTTP server and installed by the
 * "vendor-tool" installer (a real executable the test writes), and the "vendor-lock" reset veto.
 * The example is also type-checked against the SDK with `tsc --checkJs`.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EverestSim } from '../helpers/everest.js';
import { REPO_ROOT, startDaemon, tempDir } from '../helpers/daemon.js';
import { startHttpServer, type TestHttpServer } from '../helpers/http-server.js';
import { startMosquitto, type Broker } from '../helpers/mosquitto.js';

let broker: Broker;
let http: TestHttpServer;
beforeAll(async () => {
  [broker, http] = await Promise.all([startMosquitto(), startHttpServer()]);
});
afterAll(async () => {
  await Promise.all([broker.stop(), http.close()]);
});

/** A vendor flashing tool: records its argv, copies the image into its "slot" file. */
function writeVendorTool(dir: string): { tool: string; slot: string; calls(): string[][] } {
  const tool = path.join(dir, 'vendor-flash');
  const slot = path.join(dir, 'slot.img');
  const calls = path.join(dir, 'calls.jsonl');
  writeFileSync(
    tool,
    `#!${process.execPath}
const fs = require('node:fs');
const [cmd, image] = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(calls)}, JSON.stringify(process.argv.slice(2)) + '\\n');
const data = image ? fs.readFileSync(image) : undefined;
if (cmd === 'check') {
  if (!data.subarray(0, 6).equals(Buffer.from('VENDOR'))) { process.stderr.write('not a vendor image\\n'); process.exit(1); }
  process.stdout.write('4.2.0\\n');
} else if (cmd === 'install') {
  for (const p of [10, 50, 100]) process.stdout.write('progress ' + p + '\\n');
  fs.writeFileSync(${JSON.stringify(slot)}, data);
} else if (cmd !== 'commit') process.exit(2);
`,
  );
  chmodSync(tool, 0o755);
  return {
    tool,
    slot,
    calls: () => (existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]) : []),
  };
}

describe('example third-party plugin and adapter (examples/vendor-installer)', () => {
  it('type-checks against the SDK (plain JS with JSDoc, tsc --checkJs)', () => {
    const tsc = path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(REPO_ROOT, 'examples/vendor-installer/tsconfig.json')], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('loaded by path: a firmware update through the vendor tool, and resets vetoed while the lock file exists', async () => {
    const dir = tempDir('esc-example-');
    const vendor = writeVendorTool(dir);
    const lockFile = path.join(dir, 'maintenance.lock');
    const image = Buffer.concat([Buffer.from('VENDOR'), Buffer.alloc(64 * 1024, 7)]);
    http.serve('/fw-4.2.0.bin', image);
    http.serve('/not-vendor.bin', Buffer.alloc(1024, 1));

    const d = await startDaemon({
      mqtt: { url: broker.url },
      adapters: {
        installer: { type: 'vendor-tool', module: './examples/vendor-installer/adapter.js', tool: vendor.tool },
        power: { type: 'simulated' },
      },
      plugins: [
        { name: 'firmware-update', options: { installPermission: 'proceed', retryIntervalS: 0 } },
        'reset',
        { name: 'vendor-lock', module: './examples/vendor-installer/plugin.js', options: { lockFile } },
      ],
    });
    expect(d.logText()).toMatch(/"plugin":"vendor-lock".*"source":".\/examples\/vendor-installer\/plugin.js"/);
    const ev = await EverestSim.connect(broker.url);

    expect(await ev.request('update_firmware', { location: `${http.url}/fw-4.2.0.bin`, request_id: 42 })).toBe('Accepted');
    await ev.waitForStatus('firmware_update_status', (s: { firmware_update_status: string; request_id: number }) => s.request_id === 42 && s.firmware_update_status === 'Installed', 30_000);
    const names = ev.statuses<{ firmware_update_status: string; request_id: number }>('firmware_update_status').filter((s) => s.request_id === 42).map((s) => s.firmware_update_status);
    expect(names).toEqual(['Downloading', 'Downloaded', 'Installing', 'Installed']);
    expect(readFileSync(vendor.slot).equals(image)).toBe(true);
    const [check, install] = vendor.calls();
    expect(check?.[0]).toBe('check');
    expect(install).toEqual(['install', check?.[1]]);

    // an image the vendor tool rejects in `check`
    expect(await ev.request('update_firmware', { location: `${http.url}/not-vendor.bin`, request_id: 43 })).toBe('Accepted');
    await ev.waitForStatus('firmware_update_status', (s: { firmware_update_status: string; request_id: number }) => s.request_id === 43 && s.firmware_update_status === 'InstallVerificationFailed', 30_000);
    expect(vendor.calls().filter((c) => c[0] === 'install')).toHaveLength(1);

    // the veto
    expect(await ev.request('is_reset_allowed', 'Hard')).toBe(true);
    writeFileSync(lockFile, 'job 1\n');
    expect(await ev.request('is_reset_allowed', 'Hard')).toBe(false);
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(false);
    rmSync(lockFile);
    expect(await ev.request('is_reset_allowed', 'Soft')).toBe(true);
  });
});
