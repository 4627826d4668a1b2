/**
 * Firmware signing the way a CSMS hands it to the charger (OCPP SignedUpdateFirmware /
 * UpdateFirmware with `signature` and `signingCertificate`): base64 of the SHA-256 signature over
 * the whole image, RSA PKCS#1 v1.5 or ECDSA (DER) by key type, plus the signer's PEM certificate.
 */
import { createPrivateKey, createSign, createVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { ProbeError } from './io.js';

export interface SignedImage {
  /** base64 signature */
  signature: string;
  /** PEM of the signing certificate (when one was given) */
  signingCertificate?: string;
  keyType: string;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ProbeError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function loadKey(file: string): KeyObject {
  const pem = readText(file, 'signing key');
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const msg = (err as Error).message;
    if (/passphrase|encrypted/i.test(msg)) throw new ProbeError(`signing key ${file} is encrypted; decrypt it first (openssl pkey -in ${file} -out plain.key)`);
    throw new ProbeError(`signing key ${file} is not a PEM private key: ${msg}`);
  }
}

function loadCert(file: string): { pem: string; cert: X509Certificate } {
  const pem = readText(file, 'signing certificate');
  try {
    return { pem, cert: new X509Certificate(pem) };
  } catch (err) {
    throw new ProbeError(`signing certificate ${file} is not a PEM X.509 certificate: ${(err as Error).message}`);
  }
}

/** Signs `imageFile` (streamed, any size) with `keyFile`; checks that key and certificate belong together. */
export async function signImage(imageFile: string, keyFile: string, certFile?: string): Promise<SignedImage> {
  const key = loadKey(keyFile);
  const keyType = key.asymmetricKeyType ?? 'unknown';
  if (keyType !== 'rsa' && keyType !== 'ec') {
    throw new ProbeError(`signing key ${keyFile} is ${keyType}; firmware signatures use RSA or ECDSA (EC) keys`);
  }
  const cert = certFile ? loadCert(certFile) : undefined;
  if (cert && !cert.cert.checkPrivateKey(key)) {
    throw new ProbeError(`signing key ${keyFile} does not belong to the certificate ${certFile} (${cert.cert.subject.replace(/\n/g, ', ')})`);
  }
  // one pass over the image feeds the signature and, with a certificate, its self-check
  const signer = createSign('sha256');
  const verifier = createVerify('sha256');
  try {
    for await (const chunk of createReadStream(imageFile)) {
      signer.update(chunk as Buffer);
      verifier.update(chunk as Buffer);
    }
  } catch (err) {
    throw new ProbeError(`cannot read image ${imageFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const signature = signer.sign(key);
  // the daemon verifies with the certificate's public key: make sure that works before sending it
  if (cert && !verifier.verify(cert.cert.publicKey, signature)) throw new ProbeError('the signature does not verify with the certificate (unexpected)');
  return { signature: signature.toString('base64'), signingCertificate: cert?.pem, keyType };
}
