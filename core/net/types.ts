/**
 * Contract of the transfer helpers in core/net (download with resume, upload), used by
 * the firmware-update and log-upload plugins. Implementations: core/net/download.ts,
 * core/net/upload.ts, core/net/url.ts.
 */

/** Parsed and policy-checked location. `redacted` is safe to log (no user info, no query secrets). */
export type CheckedUrl =
  | { ok: true; url: URL; redacted: string }
  | { ok: false; reason: string; redacted: string };

/** TLS settings for https and ftps; certificates are verified unless rejectUnauthorized is false. */
export interface TlsOptions {
  /** extra CA certificates (PEM text) trusted in addition to the system bundle */
  ca?: string[];
  rejectUnauthorized?: boolean;
}

export type DownloadEvent =
  | { type: 'attempt'; attempt: number; resumeFrom: number }
  | { type: 'progress'; bytes: number; total?: number }
  /** the connection broke; waiting `inMs` before resuming from `bytes` */
  | { type: 'paused'; bytes: number; inMs: number; reason: string }
  | { type: 'resumed'; bytes: number };

export interface DownloadOptions {
  url: URL;
  /** destination file; if it exists and `resume` is true, the download continues after its bytes */
  dest: string;
  resume?: boolean;
  signal: AbortSignal;
  /** total attempts (>= 1); an attempt that made progress does not count against them */
  attempts: number;
  retryIntervalMs: number;
  tls?: TlsOptions;
  /** refuse when the free space where `dest` lives would fall below this after the download */
  reserveBytes?: number;
  /** refuse downloads larger than this */
  maxBytes?: number;
  /** idle timeout of one connection */
  idleTimeoutMs?: number;
  onEvent?: (event: DownloadEvent) => void;
}

export type DownloadFailure = 'not-found' | 'permission-denied' | 'no-space' | 'too-large' | 'network' | 'protocol' | 'aborted';
export type DownloadResult =
  | { ok: true; bytes: number; sha256: string }
  | { ok: false; failure: DownloadFailure; reason: string; bytes: number };

export interface UploadOptions {
  url: URL;
  file: string;
  /** name to use when the url ends with '/' and for Content-Disposition */
  fileName: string;
  /** http(s) method; POST sends multipart/form-data */
  method?: 'PUT' | 'POST';
  signal: AbortSignal;
  attempts: number;
  retryIntervalMs: number;
  tls?: TlsOptions;
  idleTimeoutMs?: number;
  onAttempt?: (attempt: number) => void;
}

/** Failure classes map 1:1 to LogStatusEnum failure values. */
export type UploadFailure = 'PermissionDenied' | 'BadMessage' | 'NotSupportedOperation' | 'UploadFailure';
export type UploadResult =
  | { ok: true; bytes: number; remote: string }
  | { ok: false; failure: UploadFailure | 'aborted'; reason: string };
