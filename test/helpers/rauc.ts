/**
 * A real RAUC system for tests: OpenSSL CA + signer, signed `format=plain` bundles, two
 * file-backed raw slots (A = rootfs.0, B = rootfs.1), a custom bootloader backend whose state
 * lives in files, a private `dbus-daemon` and `rauc service --override-boot-slot=<slot>`.
 * Everything lives in one temp dir, removed by `stop()`.
 *
 * Installing needs root and loop devices (RAUC mounts the bundle); `raucInstallSkipReason()`
 * says why not when they are missing. `rauc info`, `status` and `mark-*` work without.
 *
 * @example
 *   const rauc = await startRauc({ compatible: 'test-board' });       // booted A
 *   const bundle = await rauc.buildBundle({ version: '2.0.0' });
 *   // run the adapter / daemon with { env: { ...process.env, ...rauc.env } } and confPath: rauc.confPath
 *   await execa('rauc', [`--conf=${rauc.confPath}`, 'install', bundle.path], { env: { ...process.env, ...rauc.env } });
 *   expect(rauc.readSlot('B').subarray(0, bundle.imageSize)).toEqual(bundle.image);
 *   await rauc.reboot();                                                // boots the primary (B)
 *   expect((await rauc.status()).booted).toBe('B');
 *   await rauc.stop();
 *
 * Bootloader backend: `boot/primary` holds the primary bootname (default A), `boot/state.<A|B>`
 * each slot's good/bad state (default good), `boot/calls` every call (`bootCalls()`).
 * `set-primary` also marks the slot good (bootable), as RAUC expects of a bootloader that
 * activates a slot. `reboot()` boots the primary unless it is marked bad, then the other slot
 * (the bootloader's fallback); `rebootInto()` forces a slot.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { execa, type ResultPromise } from 'execa';

export type Bootname = 'A' | 'B';

export interface RaucFixtureOptions {
  /** `compatible` of the system (default `test-board`) */
  compatible?: string;
  /** slot the service starts as booted (default A) */
  bootSlot?: Bootname;
  /** slot file size in bytes (default 8 MiB) */
  slotSize?: number;
}

export interface BundleOptions {
  /** default: the system's compatible */
  compatible?: string;
  /** default 2.0.0 */
  version?: string;
  /** file name (default `update-<version>.raucb`) */
  name?: string;
  /**
   * - `payload`: flip one byte inside the signed squashfs (RAUC: CMS verification failure)
   * - `signature`: flip one byte inside the CMS signature
   */
  tamper?: 'payload' | 'signature';
  /** sign with a signer from a different CA (not in the keyring) */
  untrusted?: boolean;
}

export interface Bundle {
  path: string;
  compatible: string;
  version: string;
  /** the ext4 image inside the bundle (what gets written to the slot) */
  image: Buffer;
  imageSize: number;
}

export interface RaucSlotStatus {
  class?: string;
  device?: string;
  bootname?: string;
  state?: string;
  boot_status?: string;
  slot_status?: { bundle?: { compatible?: string; version?: string } };
  [key: string]: unknown;
}

export interface RaucStatus {
  compatible: string;
  booted: string;
  boot_primary: string | null;
  slots: Record<string, RaucSlotStatus>;
}

export interface RaucFixture {
  readonly dir: string;
  /** system.conf to pass as `rauc --conf` / the adapter's `confPath` */
  readonly confPath: string;
  /** CA certificate that is the system keyring */
  readonly keyringPath: string;
  readonly busAddress: string;
  /** environment for anything that talks to this RAUC: `{ DBUS_SYSTEM_BUS_ADDRESS }` */
  readonly env: { DBUS_SYSTEM_BUS_ADDRESS: string };
  readonly compatible: string;
  /** slot device files */
  readonly slots: Record<Bootname, string>;
  /** the slot the service currently runs as booted */
  readonly booted: Bootname;
  buildBundle(options?: BundleOptions): Promise<Bundle>;
  /** restart `rauc service` as booted from `slot` (a simulated reboot that may ignore the primary) */
  rebootInto(slot: Bootname): Promise<void>;
  /** restart `rauc service` as booted from the primary slot, or the other one when the primary is bad */
  reboot(): Promise<Bootname>;
  /** `rauc status --detailed --output-format=json`, slots keyed by name (rootfs.0, rootfs.1) */
  status(): Promise<RaucStatus>;
  /** the bootloader backend's view: primary and per-slot state */
  bootState(): { primary: Bootname; A: string; B: string };
  /** every call RAUC made to the bootloader backend so far, e.g. `set-state B good` */
  bootCalls(): string[];
  readSlot(slot: Bootname): Buffer;
  /** the `rauc service` log so far */
  serviceLog(): string;
  stop(): Promise<void>;
}

/** Why a RAUC install cannot run here, or undefined when it can (root + /dev/loop-control). */
export function raucInstallSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'RAUC install needs root (it mounts the bundle through a loop device)';
  if (!fs.existsSync('/dev/loop-control')) return 'RAUC install needs loop devices and /dev/loop-control is absent';
  return undefined;
}

const BOOTLOADER = `#!/bin/sh
S=$(dirname "$0")/boot
echo "$*" >> "$S/calls"
case "$1" in
  get-primary) cat "$S/primary" 2>/dev/null || echo A ;;
  set-primary) echo "$2" > "$S/primary"; echo good > "$S/state.$2" ;;
  get-state)   cat "$S/state.$2" 2>/dev/null || echo good ;;
  set-state)   echo "$3" > "$S/state.$2" ;;
  get-current) cat "$S/current" 2>/dev/null || echo A ;;
  *) exit 1 ;;
esac
`;

async function openssl(args: string[], cwd: string): Promise<void> {
  await execa('openssl', args, { cwd, stdin: 'ignore' });
}

async function makeCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  await openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '3650',
      '-subj', `/O=everest-system-client tests/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  return { cert, key };
}

async function makeSigner(
  dir: string,
  name: string,
  ca: { cert: string; key: string },
  extensions: string,
): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, extensions);
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/O=everest-system-client tests/CN=${name}`], dir);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '3650', '-extfile', ext], dir);
  return { cert, key };
}

export interface Pki {
  ca: { cert: string; key: string };
  signer: { cert: string; key: string };
}

/** PEM texts of generated PKIs, by name and signer extensions: made once per test process. */
const pkiCache = new Map<string, Promise<Record<string, Buffer>>>();

/**
 * An EC P-256 CA + code signer (files `<name>-ca.pem/.key`, `<name>-signer.pem/.key` in `dir`).
 * Shared by the RAUC and SWUpdate fixtures; the keys are generated once per test process and
 * copied into each fixture's dir.
 */
export async function makePki(
  dir: string,
  name: string,
  signerExtensions = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n',
): Promise<Pki> {
  await fsp.mkdir(dir, { recursive: true });
  const files = { caCert: `${name}-ca.pem`, caKey: `${name}-ca.key`, cert: `${name}-signer.pem`, key: `${name}-signer.key` };
  const cacheKey = `${name}\0${signerExtensions}`;
  let cached = pkiCache.get(cacheKey);
  if (!cached) {
    cached = (async () => {
      const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'pki-'));
      try {
        const ca = await makeCa(work, `${name}-ca`);
        await makeSigner(work, `${name}-signer`, ca, signerExtensions);
        const out: Record<string, Buffer> = {};
        for (const f of Object.values(files)) out[f] = await fsp.readFile(path.join(work, f));
        return out;
      } finally {
        await fsp.rm(work, { recursive: true, force: true });
      }
    })();
    pkiCache.set(cacheKey, cached);
    cached.catch(() => pkiCache.delete(cacheKey));
  }
  const pem = await cached;
  for (const [f, data] of Object.entries(pem)) await fsp.writeFile(path.join(dir, f), data, { mode: 0o600 });
  const at = (f: string) => path.join(dir, f);
  return { ca: { cert: at(files.caCert), key: at(files.caKey) }, signer: { cert: at(files.cert), key: at(files.key) } };
}

/** Resolves when `check` resolves true; rejects after `timeoutMs` or when `failed()` says why. */
async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  failed: () => string | undefined,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed();
    if (why) throw new Error(`${what}: ${why}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function startRauc(options: RaucFixtureOptions = {}): Promise<RaucFixture> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rauc-'));
  const compatible = options.compatible ?? 'test-board';
  const slotSize = options.slotSize ?? 8 * 1024 * 1024;
  for (const sub of ['mnt', 'data', 'slots', 'boot', 'pki', 'bundles']) await fsp.mkdir(path.join(dir, sub));
  const slots: Record<Bootname, string> = { A: path.join(dir, 'slots', 'a.img'), B: path.join(dir, 'slots', 'b.img') };
  for (const file of Object.values(slots)) {
    await fsp.writeFile(file, '');
    await fsp.truncate(file, slotSize);
  }

  const pki = await makePki(path.join(dir, 'pki'), 'rauc');
  let untrusted: { cert: string; key: string } | undefined;

  const bootloader = path.join(dir, 'bootloader.sh');
  fs.writeFileSync(bootloader, BOOTLOADER, { mode: 0o755 });
  const confPath = path.join(dir, 'system.conf');
  fs.writeFileSync(
    confPath,
    [
      '[system]', `compatible=${compatible}`, 'bootloader=custom', `mountprefix=${dir}/mnt`, `data-directory=${dir}/data`,
      '', '[handlers]', `bootloader-custom-backend=${bootloader}`,
      '', '[keyring]', `path=${pki.ca.cert}`,
      '', '[slot.rootfs.0]', `device=${slots.A}`, 'type=raw', 'bootname=A',
      '', '[slot.rootfs.1]', `device=${slots.B}`, 'type=raw', 'bootname=B', '',
    ].join('\n'),
  );
  const sock = path.join(dir, 'bus.sock');
  const busConf = path.join(dir, 'bus.conf');
  fs.writeFileSync(
    busConf,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>custom</type><listen>unix:path=${sock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
`,
  );
  const busAddress = `unix:path=${sock}`;
  const env = { DBUS_SYSTEM_BUS_ADDRESS: busAddress };
  const childEnv = { ...process.env, ...env };

  let bus: ResultPromise | undefined;
  let service: ResultPromise | undefined;
  let serviceLog = '';
  let booted: Bootname = options.bootSlot ?? 'A';

  const stopProcess = async (p: ResultPromise | undefined): Promise<void> => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGTERM');
    await p.catch(() => undefined);
  };

  const startService = async (slot: Bootname): Promise<void> => {
    fs.writeFileSync(path.join(dir, 'boot', 'current'), `${slot}\n`);
    const svc = execa('rauc', ['service', `--conf=${confPath}`, `--override-boot-slot=${slot}`], {
      env: childEnv, stdin: 'ignore', all: true, buffer: false, reject: false,
    });
    service = svc;
    let exited: string | undefined;
    svc.all?.on('data', (chunk: Buffer) => (serviceLog += chunk.toString()));
    void svc.then((r) => (exited = `rauc service exited (${r.exitCode ?? r.signal}): ${serviceLog.trim().split('\n').slice(-3).join(' | ')}`));
    await waitFor(
      async () =>
        (await execa('busctl', [`--address=${busAddress}`, 'status', 'de.pengutronix.rauc'], { reject: false, stdin: 'ignore' })).exitCode === 0,
      'rauc service on the private bus',
      () => exited,
    );
    booted = slot;
  };

  const stop = async (): Promise<void> => {
    await stopProcess(service);
    await stopProcess(bus);
    await fsp.rm(dir, { recursive: true, force: true });
  };

  try {
    bus = execa('dbus-daemon', [`--config-file=${busConf}`, '--nofork', '--print-address=1'], {
      stdin: 'ignore', buffer: false, reject: false,
    });
    let busExited: string | undefined;
    let address = '';
    bus.stdout?.on('data', (c: Buffer) => (address += c.toString()));
    void bus.then((r) => (busExited = `dbus-daemon exited (${r.exitCode ?? r.signal})`));
    await waitFor(async () => address.includes('\n') && fs.existsSync(sock), 'dbus-daemon', () => busExited);
    await startService(booted);
  } catch (err) {
    await stop();
    throw err;
  }

  let bundles = 0;
  const buildBundle = async (opts: BundleOptions = {}): Promise<Bundle> => {
    const version = opts.version ?? '2.0.0';
    const bundleCompatible = opts.compatible ?? compatible;
    const work = path.join(dir, 'bundles', `b${++bundles}`);
    await fsp.mkdir(path.join(work, 'src'), { recursive: true });
    await fsp.mkdir(path.join(work, 'content'));
    // random data so every image differs and the slot comparison means something
    await fsp.writeFile(path.join(work, 'src', 'payload.bin'), randomBytes(65536));
    await fsp.writeFile(path.join(work, 'src', 'version'), `${version}\n`);
    const imagePath = path.join(work, 'content', 'rootfs.ext4');
    await execa('mkfs.ext4', ['-q', '-F', '-d', path.join(work, 'src'), '-L', 'rootfs', imagePath, '4M'], { stdin: 'ignore' });
    await fsp.writeFile(
      path.join(work, 'content', 'manifest.raucm'),
      `[update]\ncompatible=${bundleCompatible}\nversion=${version}\ndescription=test bundle ${version}\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.ext4\n`,
    );
    let signer = pki.signer;
    if (opts.untrusted) {
      untrusted ??= (await makePki(path.join(dir, 'pki-untrusted'), 'untrusted')).signer;
      signer = untrusted;
    }
    const out = path.join(dir, 'bundles', opts.name ?? `update-${version}-${bundles}.raucb`);
    await execa('rauc', ['bundle', `--cert=${signer.cert}`, `--key=${signer.key}`, path.join(work, 'content'), out], {
      stdin: 'ignore', env: childEnv,
    });
    if (opts.tamper) {
      const data = await fsp.readFile(out);
      // plain bundle layout: squashfs | CMS signature | 8-byte big-endian signature size
      const sigSize = Number(data.readBigUInt64BE(data.length - 8));
      const sigStart = data.length - 8 - sigSize;
      const at = opts.tamper === 'payload' ? Math.floor(sigStart / 2) : sigStart + Math.floor(sigSize / 2);
      data[at] = data[at]! ^ 0xff;
      await fsp.writeFile(out, data);
    }
    const image = await fsp.readFile(imagePath);
    return { path: out, compatible: bundleCompatible, version, image, imageSize: image.length };
  };

  const bootState = () => {
    const read = (f: string, dflt: string) => {
      try {
        return fs.readFileSync(path.join(dir, 'boot', f), 'utf8').trim();
      } catch {
        return dflt;
      }
    };
    return { primary: read('primary', 'A') as Bootname, A: read('state.A', 'good'), B: read('state.B', 'good') };
  };

  return {
    dir,
    confPath,
    keyringPath: pki.ca.cert,
    busAddress,
    env,
    compatible,
    slots,
    get booted() {
      return booted;
    },
    buildBundle,
    async rebootInto(slot) {
      await stopProcess(service);
      await startService(slot);
    },
    async reboot() {
      const state = bootState();
      const slot: Bootname = state[state.primary] === 'bad' ? (state.primary === 'A' ? 'B' : 'A') : state.primary;
      await stopProcess(service);
      await startService(slot);
      return slot;
    },
    async status() {
      const r = await execa('rauc', [`--conf=${confPath}`, 'status', '--detailed', '--output-format=json'], {
        env: childEnv, stdin: 'ignore',
      });
      const raw = JSON.parse(r.stdout) as Omit<RaucStatus, 'slots'> & { slots: Record<string, RaucSlotStatus>[] };
      return { ...raw, slots: Object.assign({}, ...raw.slots) as Record<string, RaucSlotStatus> };
    },
    bootState,
    bootCalls: () => {
      try {
        return fs.readFileSync(path.join(dir, 'boot', 'calls'), 'utf8').split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
    readSlot: (slot) => fs.readFileSync(slots[slot]),
    serviceLog: () => serviceLog,
    stop,
  };
}
