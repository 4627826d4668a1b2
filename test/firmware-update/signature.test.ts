import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkSigningCertificate,
  decodeSignature,
  loadTrustAnchors,
  parseCertificates,
  verifyFileSignature,
} from '../../plugins/firmware-update/signature.js';
import { makeCa, makeSelfSigned, makeSigner, signFile, type TestCa, type TestSigner } from './pki.js';

let dir: string;
let ca: TestCa;
let rsa: TestSigner;
let ec: TestSigner;
let image: string;

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fw-sig-'));
  ca = await makeCa(dir);
  [rsa, ec] = await Promise.all([makeSigner(ca), makeSigner(ca, { key: 'ec' })]);
  image = path.join(dir, 'image.bin');
  await fsp.writeFile(image, randomBytes(300_000));
});
afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

const cert = (s: TestSigner) => parseCertificates(s.certPem)[0]!;

describe('verifyFileSignature', () => {
  it.each([
    ['RSA PKCS#1 v1.5', () => rsa, {}],
    ['RSA-PSS', () => rsa, { pss: true }],
    ['ECDSA P-256', () => ec, {}],
  ])('accepts a %s signature made by openssl and refuses it over a changed file', async (_n, signer, opts) => {
    const sig = decodeSignature(await signFile(image, signer(), opts))!;
    expect(await verifyFileSignature(image, sig, cert(signer()))).toBe(true);
    const changed = path.join(dir, 'changed.bin');
    const bytes = await fsp.readFile(image);
    bytes[12345] ^= 0x01;
    await fsp.writeFile(changed, bytes);
    expect(await verifyFileSignature(changed, sig, cert(signer()))).toBe(false);
  });

  it('refuses a signature made with another key', async () => {
    const sig = decodeSignature(await signFile(image, ec))!;
    expect(await verifyFileSignature(image, sig, cert(rsa))).toBe(false);
  });
});

describe('decodeSignature', () => {
  it('takes base64 with line breaks and refuses what is not base64', () => {
    expect(decodeSignature('AAEC\nAwQ=')?.toString('hex')).toBe('0001020304');
    expect(decodeSignature('not base64!')).toBeUndefined();
    expect(decodeSignature('')).toBeUndefined();
  });
});

describe('checkSigningCertificate', () => {
  it('accepts a valid certificate without anchors and with the issuing anchor', () => {
    expect(checkSigningCertificate(rsa.certPem, []).ok).toBe(true);
    const anchors = loadTrustAnchors([{ path: ca.certFile, text: ca.certPem }]);
    expect(checkSigningCertificate(ec.certPem, anchors).ok).toBe(true);
  });

  it('refuses unparsable, expired and foreign certificates with a reason', async () => {
    const anchors = loadTrustAnchors([{ path: ca.certFile, text: ca.certPem }]);
    const garbage = checkSigningCertificate('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', []);
    expect(garbage).toMatchObject({ ok: false, reason: expect.stringMatching(/cannot be parsed/) });
    expect(checkSigningCertificate('hello', [])).toMatchObject({ ok: false, reason: expect.stringMatching(/no PEM/) });
    const expired = await makeSigner(ca, { expired: true });
    expect(checkSigningCertificate(expired.certPem, [])).toMatchObject({ ok: false, reason: expect.stringMatching(/expired/) });
    const foreign = await makeSelfSigned(path.join(dir, 'foreign'));
    expect(checkSigningCertificate(foreign.certPem, [])).toMatchObject({ ok: true });
    expect(checkSigningCertificate(foreign.certPem, anchors)).toMatchObject({ ok: false, reason: expect.stringMatching(/trust anchor/) });
  });

  it('follows an intermediate given after the signing certificate', async () => {
    // intermediate CA issued by the root, signer issued by the intermediate
    const root = await makeCa(dir, 'root');
    const mid = await makeCa(dir, 'mid');
    // re-issue the intermediate's certificate under the root, as a CA
    const midCsr = path.join(mid.dir, 'mid.csr');
    const { execa } = await import('execa');
    await execa('openssl', ['x509', '-x509toreq', '-in', mid.certFile, '-signkey', mid.keyFile, '-out', midCsr]);
    const ext = path.join(mid.dir, 'ca.ext');
    await fsp.writeFile(ext, 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign\n');
    const midByRoot = path.join(mid.dir, 'mid-by-root.pem');
    await execa('openssl', ['x509', '-req', '-in', midCsr, '-CA', root.certFile, '-CAkey', root.keyFile, '-CAcreateserial',
      '-out', midByRoot, '-days', '30', '-extfile', ext]);
    const leaf = await makeSigner(mid);
    const anchors = loadTrustAnchors([{ path: root.certFile, text: root.certPem }]);
    expect(checkSigningCertificate(leaf.certPem, anchors).ok).toBe(false);
    const chain = leaf.certPem + (await fsp.readFile(midByRoot, 'utf8'));
    expect(checkSigningCertificate(chain, anchors).ok).toBe(true);
  });

  it('names the file of an unreadable trust anchor', () => {
    expect(() => loadTrustAnchors([{ path: '/etc/anchor.pem', text: 'nope' }])).toThrow(/anchor\.pem/);
  });
});
