/**
 * Test PKI for firmware signing, made with the real `openssl` (node:crypto cannot issue X.509):
 * a CA (the trust anchor), signers issued by it (RSA or EC; current or expired), and signatures
 * over files (PKCS#1 v1.5, PSS, ECDSA) in the base64 form OCPP carries.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { execa } from 'execa';

export interface TestCa {
  dir: string;
  /** PEM file of the CA certificate (a trust anchor) */
  certFile: string;
  keyFile: string;
  certPem: string;
}

export interface TestSigner {
  certPem: string;
  keyFile: string;
}

const NO_ENV_CONFIG = { ...process.env, OPENSSL_CONF: '/dev/null' };
const openssl = (args: string[], cwd?: string) => execa('openssl', args, { cwd, env: NO_ENV_CONFIG });

export async function makeCa(dir: string, name = 'fw-ca'): Promise<TestCa> {
  const d = path.join(dir, name);
  await fsp.mkdir(path.join(d, 'newcerts'), { recursive: true });
  const certFile = path.join(d, 'ca.pem');
  const keyFile = path.join(d, 'ca.key');
  await openssl([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '30',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await fsp.writeFile(path.join(d, 'index.txt'), '');
  await fsp.writeFile(path.join(d, 'serial'), '1000\n');
  await fsp.writeFile(
    path.join(d, 'ca.cnf'),
    [
      '[ ca ]', 'default_ca = test', '[ test ]', `dir = ${d}`, `database = ${d}/index.txt`, `new_certs_dir = ${d}/newcerts`,
      `serial = ${d}/serial`, 'default_md = sha256', 'policy = pol', 'unique_subject = no', 'x509_extensions = ext',
      '[ pol ]', 'commonName = supplied', '[ ext ]', 'basicConstraints = CA:FALSE', 'keyUsage = critical,digitalSignature', '',
    ].join('\n'),
  );
  return { dir: d, certFile, keyFile, certPem: await fsp.readFile(certFile, 'utf8') };
}

let seq = 0;

/** A signing certificate issued by `ca`; `expired` puts its validity in 2020. */
export async function makeSigner(ca: TestCa, opts: { key?: 'rsa' | 'ec'; expired?: boolean } = {}): Promise<TestSigner> {
  const n = `signer-${++seq}`;
  const keyFile = path.join(ca.dir, `${n}.key`);
  const csr = path.join(ca.dir, `${n}.csr`);
  const out = path.join(ca.dir, `${n}.pem`);
  const keyArgs = opts.key === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048'];
  await openssl(['req', ...keyArgs, '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${n}`]);
  const dates = opts.expired ? ['-startdate', '20200101000000Z', '-enddate', '20210101000000Z'] : ['-days', '30'];
  await openssl(['ca', '-batch', '-config', path.join(ca.dir, 'ca.cnf'), '-cert', ca.certFile, '-keyfile', ca.keyFile,
    ...dates, '-notext', '-in', csr, '-out', out]);
  return { certPem: await fsp.readFile(out, 'utf8'), keyFile };
}

/** A self-signed certificate that no configured CA issued. */
export async function makeSelfSigned(dir: string): Promise<TestSigner> {
  const n = `self-${++seq}`;
  const keyFile = path.join(dir, `${n}.key`);
  const out = path.join(dir, `${n}.pem`);
  await fsp.mkdir(dir, { recursive: true });
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', out, '-days', '30', '-subj', `/CN=${n}`]);
  return { certPem: await fsp.readFile(out, 'utf8'), keyFile };
}

/** Base64 signature over `file` (SHA-256): PKCS#1 v1.5 / ECDSA by default, RSA-PSS with `pss`. */
export async function signFile(file: string, signer: TestSigner, opts: { pss?: boolean } = {}): Promise<string> {
  const sigFile = `${file}.${++seq}.sig`;
  const pss = opts.pss ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:-1'] : [];
  await openssl(['dgst', '-sha256', '-sign', signer.keyFile, ...pss, '-out', sigFile, file]);
  const sig = await fsp.readFile(sigFile);
  await fsp.rm(sigFile);
  return sig.toString('base64');
}
