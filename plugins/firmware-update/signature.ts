/**
 * Signing certificate checks and the firmware signature check (node:crypto only).
 *
 * The signature is verified over the whole downloaded file with SHA-256 and the key of the
 * signing certificate: RSA PKCS#1 v1.5 or RSA-PSS for RSA keys, ECDSA (DER or IEEE P1363
 * encoding) for EC keys.
 */
import { createReadStream } from 'node:fs';
import { constants, createVerify, X509Certificate, type Verify } from 'node:crypto';

export type CertificateCheck =
  | { ok: true; certificate: X509Certificate }
  | { ok: false; reason: string };

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const SUPPORTED_KEYS = new Set(['rsa', 'rsa-pss', 'ec']);
const MAX_CHAIN = 8;

/** Every certificate in a PEM text; throws when one of them cannot be parsed. */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_BLOCK) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

function validityProblem(cert: X509Certificate, now: Date, what: string): string | undefined {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (!Number.isFinite(from) || !Number.isFinite(to)) return `${what} has unreadable validity dates`;
  if (now.getTime() < from) return `${what} is not valid before ${new Date(from).toISOString()}`;
  if (now.getTime() > to) return `${what} expired on ${new Date(to).toISOString()}`;
  return undefined;
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Check the request's `signing_certificate` (PEM: the signing certificate first, optionally followed
 * by intermediates): parsable, currently valid, a supported key type and, when `anchors` are given,
 * chaining to one of them through valid CA certificates.
 */
export function checkSigningCertificate(pem: string, anchors: readonly X509Certificate[], now = new Date()): CertificateCheck {
  let certs: X509Certificate[];
  try {
    certs = parseCertificates(pem);
  } catch (err) {
    return { ok: false, reason: `signing certificate cannot be parsed: ${(err as Error).message}` };
  }
  const leaf = certs[0];
  if (!leaf) return { ok: false, reason: 'signing certificate holds no PEM certificate' };
  const leafProblem = validityProblem(leaf, now, 'signing certificate');
  if (leafProblem) return { ok: false, reason: leafProblem };
  const keyType = leaf.publicKey.asymmetricKeyType ?? 'unknown';
  if (!SUPPORTED_KEYS.has(keyType)) return { ok: false, reason: `signing certificate key type ${keyType} is not supported` };
  if (anchors.length === 0) return { ok: true, certificate: leaf };

  let current = leaf;
  const intermediates = certs.slice(1);
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    if (anchors.some((a) => a.fingerprint256 === current.fingerprint256)) return { ok: true, certificate: leaf };
    const anchor = anchors.find((a) => issuedBy(current, a));
    if (anchor) {
      const problem = validityProblem(anchor, now, 'trust anchor');
      return problem ? { ok: false, reason: problem } : { ok: true, certificate: leaf };
    }
    const next = intermediates.find((c) => c !== current && c.ca && issuedBy(current, c));
    if (!next) break;
    const problem = validityProblem(next, now, 'intermediate certificate');
    if (problem) return { ok: false, reason: problem };
    current = next;
  }
  return { ok: false, reason: 'signing certificate does not chain to a configured trust anchor' };
}

/** Load trust anchors from PEM files (each may hold several certificates). Throws with the file name. */
export function loadTrustAnchors(files: readonly { path: string; text: string }[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const f of files) {
    let certs: X509Certificate[];
    try {
      certs = parseCertificates(f.text);
    } catch (err) {
      throw new Error(`trust anchor ${f.path} cannot be parsed: ${(err as Error).message}`);
    }
    if (certs.length === 0) throw new Error(`trust anchor ${f.path} holds no PEM certificate`);
    out.push(...certs);
  }
  return out;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Decode the request's base64 signature (whitespace allowed); undefined when it is not base64. */
export function decodeSignature(text: string): Buffer | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64.test(compact)) return undefined;
  return Buffer.from(compact, 'base64');
}

/**
 * Verify `signature` over the file with the certificate's key (SHA-256). The file is read once;
 * every applicable scheme is checked from that one pass. Resolves false on mismatch, rejects only
 * when the file cannot be read or `signal` aborts.
 */
export async function verifyFileSignature(
  file: string,
  signature: Buffer,
  certificate: X509Certificate,
  signal?: AbortSignal,
): Promise<boolean> {
  const key = certificate.publicKey;
  const type = key.asymmetricKeyType;
  const checks: { v: Verify; run: (v: Verify) => boolean }[] = [];
  const add = (run: (v: Verify) => boolean) => checks.push({ v: createVerify('sha256'), run });
  if (type === 'rsa') {
    add((v) => v.verify({ key, padding: constants.RSA_PKCS1_PADDING }, signature));
    add((v) => v.verify({ key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature));
  } else if (type === 'rsa-pss') {
    add((v) => v.verify({ key, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature));
  } else if (type === 'ec') {
    add((v) => v.verify({ key, dsaEncoding: 'der' }, signature));
    add((v) => v.verify({ key, dsaEncoding: 'ieee-p1363' }, signature));
  } else {
    return false;
  }
  const stream = createReadStream(file, { signal });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    for (const c of checks) c.v.update(chunk);
  }
  return checks.some((c) => {
    try {
      return c.run(c.v);
    } catch {
      return false;
    }
  });
}
