/**
 * How an ftp:// or ftps:// location is reached, shared by download and upload so both read a
 * CSMS's URL the same way:
 * - ftp:// is plain FTP (port 21 by default).
 * - ftps:// without a port, or with port 990, is implicit TLS on that port (990, as curl reads it).
 * - ftps:// with any other port is explicit TLS (AUTH TLS) on that port.
 * Certificates are verified against Node's bundled roots plus the configured extra CAs, unless
 * rejectUnauthorized is false. Credentials come from the URL (anonymous otherwise).
 */
import tls from 'node:tls';
import type { AccessOptions, Client as FtpClient, FTPError } from 'basic-ftp';
import type { TlsOptions } from './types.js';
import { credentialsFromUrl } from './url.js';

export const IMPLICIT_FTPS_PORT = 990;

type BasicFtp = typeof import('basic-ftp');
/** basic-ftp, loaded on the first FTP transfer (not at start-up: about 80 ms of imports) */
let basicFtp: BasicFtp | undefined;

/** A new basic-ftp client; loads basic-ftp on first use. */
export async function newFtpClient(idleTimeoutMs: number): Promise<FtpClient> {
  basicFtp ??= await import('basic-ftp');
  return new basicFtp.Client(idleTimeoutMs);
}

/** true for an error from basic-ftp (none can exist before the first FTP client was made) */
export function isFtpError(err: unknown): err is FTPError {
  return basicFtp !== undefined && err instanceof basicFtp.FTPError;
}

export type FtpTlsMode = 'none' | 'explicit' | 'implicit';

export function ftpTlsMode(url: URL): FtpTlsMode {
  if (url.protocol !== 'ftps:') return 'none';
  return !url.port || Number(url.port) === IMPLICIT_FTPS_PORT ? 'implicit' : 'explicit';
}

/** Extra CAs on top of Node's bundled roots, or undefined for the roots alone. */
export function trustedCa(t: TlsOptions | undefined): string[] | undefined {
  return t?.ca?.length ? [...tls.rootCertificates, ...t.ca] : undefined;
}

/** basic-ftp access options for a location. */
export function ftpAccessOptions(url: URL, tlsOptions: TlsOptions | undefined): AccessOptions {
  const mode = ftpTlsMode(url);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const creds = credentialsFromUrl(url) ?? { user: 'anonymous', password: 'anonymous@' };
  return {
    host,
    port: url.port ? Number(url.port) : mode === 'implicit' ? IMPLICIT_FTPS_PORT : 21,
    user: creds.user,
    password: creds.password,
    secure: mode === 'implicit' ? 'implicit' : mode === 'explicit',
    secureOptions:
      mode === 'none'
        ? undefined
        : {
            ca: trustedCa(tlsOptions),
            rejectUnauthorized: tlsOptions?.rejectUnauthorized !== false,
            servername: /^[\d.]+$|:/.test(host) ? undefined : host,
          },
  };
}
