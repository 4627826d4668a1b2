/**
 * Signed SWUpdate images for tests: an EC CA + CMS signer, `.swu` files (cpio -H crc with
 * `sw-description` first and `sw-description.sig` second) that write a raw image into a target
 * file and a rawfile into `target/etc/app.conf`, and a per-fixture TMPDIR (SWUpdate extracts
 * there and puts its IPC sockets there). Everything lives in one temp dir, removed by `stop()`.
 * SWUpdate needs no root.
 *
 * @example
 *   const swu = await makeSwupdate();                       // hardware revision 1.0
 *   const pkg = await swu.buildSwu({ version: '2.0.0' });
 *   // adapter options: { publicKey: swu.publicKey, hardware: swu.hardware, tmpDir: swu.tmpDir }
 *   expect(fs.readFileSync(swu.targetImage).subarray(0, pkg.image.length)).toEqual(pkg.image);
 *   expect(fs.readFileSync(swu.targetFile, 'utf8')).toBe(pkg.fileContent);
 *   const bad = await swu.buildSwu({ corrupt: true });      // HASH mismatch
 *   await swu.stop();
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { execa } from 'execa';
import { makePki, type Pki } from './rauc.js';

export interface SwupdateFixtureOptions {
  /** `-H` value, `<board>:<revision>` (default `test-board:1.0`) */
  hardware?: string;
  /** size of the raw target file (default 2 MiB) */
  targetSize?: number;
}

export interface SwuOptions {
  /** default 2.0.0 */
  version?: string;
  /** hardware-compatibility revisions (default: the fixture's revision) */
  revisions?: string[];
  /** raw image size (default 256 KiB) */
  imageBytes?: number;
  name?: string;
  /** flip a byte inside the raw image after hashing: SWUpdate reports a HASH mismatch */
  corrupt?: boolean;
  /** edit sw-description after signing: signature verification fails */
  tamperDescription?: boolean;
  /** sign with a signer from another CA */
  untrusted?: boolean;
}

export interface SwuPackage {
  path: string;
  version: string;
  /** the raw image written to `targetImage` */
  image: Buffer;
  /** the text written to `targetFile` */
  fileContent: string;
}

export interface SwupdateFixture {
  readonly dir: string;
  /** TMPDIR for swupdate (adapter option `tmpDir`) */
  readonly tmpDir: string;
  /** CA certificate for `-k` (adapter option `publicKey`) */
  readonly publicKey: string;
  /** `-H` value (adapter option `hardware`) */
  readonly hardware: string;
  /** raw handler target (pre-sized, zero-filled) */
  readonly targetImage: string;
  /** rawfile handler target (created by the install) */
  readonly targetFile: string;
  buildSwu(options?: SwuOptions): Promise<SwuPackage>;
  stop(): Promise<void>;
}

const SIGNER_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=emailProtection\n';
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export async function makeSwupdate(options: SwupdateFixtureOptions = {}): Promise<SwupdateFixture> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'swupdate-'));
  try {
    const hardware = options.hardware ?? 'test-board:1.0';
    const revision = hardware.split(':')[1] ?? '1.0';
    const tmpDir = path.join(dir, 'tmp');
    const targetImage = path.join(dir, 'target', 'slot-b.img');
    const targetFile = path.join(dir, 'target', 'etc', 'app.conf');
    for (const sub of ['tmp', 'target', 'build', 'out']) await fsp.mkdir(path.join(dir, sub));
    await fsp.writeFile(targetImage, '');
    await fsp.truncate(targetImage, options.targetSize ?? 2 * 1024 * 1024);
    const pki = await makePki(path.join(dir, 'pki'), 'swu', SIGNER_EXT);
    let untrusted: Pki | undefined;
    let count = 0;

    const buildSwu = async (opts: SwuOptions = {}): Promise<SwuPackage> => {
      const version = opts.version ?? '2.0.0';
      const work = path.join(dir, 'build', `s${++count}`);
      await fsp.mkdir(work);
      const image = randomBytes(opts.imageBytes ?? 256 * 1024);
      const fileContent = `version=${version}\n`;
      await fsp.writeFile(path.join(work, 'rootfs.img'), image);
      await fsp.writeFile(path.join(work, 'app.conf'), fileContent);
      const revisions = (opts.revisions ?? [revision]).map((r) => `"${r}"`).join(', ');
      const description = `software =
{
    version = "${version}";
    description = "test update ${version}";
    hardware-compatibility: [ ${revisions} ];
    images: ( {
        filename = "rootfs.img";
        device = "${targetImage}";
        type = "raw";
        sha256 = "${sha256(image)}";
    } );
    files: ( {
        filename = "app.conf";
        path = "${targetFile}";
        type = "rawfile";
        sha256 = "${sha256(fileContent)}";
        properties: { create-destination = "true"; };
    } );
}
`;
      await fsp.writeFile(path.join(work, 'sw-description'), description);
      let signer = pki.signer;
      if (opts.untrusted) {
        untrusted ??= await makePki(path.join(dir, 'pki-untrusted'), 'swu-untrusted', SIGNER_EXT);
        signer = untrusted.signer;
      }
      await execa(
        'openssl',
        ['cms', '-sign', '-in', 'sw-description', '-out', 'sw-description.sig', '-signer', signer.cert, '-inkey', signer.key,
          '-outform', 'DER', '-nosmimecap', '-binary'],
        { cwd: work, stdin: 'ignore' },
      );
      if (opts.tamperDescription) {
        await fsp.writeFile(path.join(work, 'sw-description'), description.replace(`"test update ${version}"`, '"tampered"'));
      }
      if (opts.corrupt) {
        const bad = Buffer.from(image);
        bad[Math.floor(bad.length / 2)] = bad[Math.floor(bad.length / 2)]! ^ 0xff;
        await fsp.writeFile(path.join(work, 'rootfs.img'), bad);
      }
      const out = path.join(dir, 'out', opts.name ?? `update-${version}-${count}.swu`);
      const cpio = await execa('cpio', ['-o', '-H', 'crc', '--quiet'], {
        cwd: work,
        input: 'sw-description\nsw-description.sig\nrootfs.img\napp.conf\n',
        encoding: 'buffer',
      });
      await fsp.writeFile(out, cpio.stdout);
      return { path: out, version, image, fileContent };
    };

    return {
      dir,
      tmpDir,
      publicKey: pki.ca.cert,
      hardware,
      targetImage,
      targetFile,
      buildSwu,
      stop: () => fsp.rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }
}
