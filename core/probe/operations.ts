/**
 * The probe's commands that play EVerest's side of one operation against a running daemon.
 * Each returns the exit code (see EXIT) instead of exiting, so tests can call them in-process.
 */
import { randomInt } from 'node:crypto';
import type { FirmwareUpdateRequest, ResetType, UploadLogsRequest } from '../api.js';
import type { M2eMessage } from '../everestSide.js';
import { redactUrl } from '../net/url.js';
import { systemApiSchemas } from '../schemas.js';
import { resolveBroker, type BrokerCliOptions } from './broker.js';
import { EXIT, ProbeError, Reporter, show, type ProbeIO } from './io.js';
import { ProbeSession } from './session.js';
import { signImage } from './sign.js';
import { readFileSync } from 'node:fs';

export interface CommonOptions extends BrokerCliOptions {
  json?: boolean;
  /** EVerest's heartbeat interval; 0 = none */
  heartbeatMs?: number;
  heartbeatFrom?: bigint;
  /** EVerest's communication check timeout; 0 = no check */
  commTimeoutS?: number;
}

export interface RequestOptions extends CommonOptions {
  /** how long to wait for the reply */
  timeoutS?: number;
}

interface Ended {
  code: number;
  result?: unknown;
  message?: string;
}

/** Runs `body` in a connected session and reports its end; every failure becomes an exit code. */
export async function withSession(opts: CommonOptions, io: ProbeIO, body: (s: ProbeSession, rep: Reporter) => Promise<Ended>): Promise<number> {
  const rep = new Reporter(io, opts.json === true);
  const started = Date.now();
  let session: ProbeSession | undefined;
  let ended: Ended;
  try {
    const broker = resolveBroker(opts);
    session = await ProbeSession.open(
      broker,
      { heartbeatMs: opts.heartbeatMs ?? 1000, heartbeatFrom: opts.heartbeatFrom, commTimeoutS: opts.commTimeoutS ?? 5 },
      rep,
      io.signal,
    );
    ended = await body(session, rep);
  } catch (err) {
    // anything unexpected (e.g. the connection torn down mid-operation) still ends with a message, not a stack trace
    ended = err instanceof ProbeError ? { code: err.exitCode, message: err.message } : { code: EXIT.failed, message: `probe failed: ${(err as Error).message}` };
  } finally {
    rep.stopLive();
    await session?.close();
  }
  const ok = ended.code === EXIT.ok;
  const duration = Date.now() - started;
  if (rep.json) {
    rep.event('end', { ok, exit_code: ended.code, ...(ended.result !== undefined ? { result: ended.result } : {}), ...(ended.message ? { message: ended.message } : {}), duration_ms: duration });
    if (!ok && ended.message) rep.error(ended.message);
  } else if (ok) {
    if (ended.message) rep.line(rep.c.green(`✔ ${ended.message}`));
  } else if (ended.message) {
    rep.error(`${rep.c.red('✖')} ${ended.message}`);
  }
  return ended.code;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------------------
// update-firmware
// ---------------------------------------------------------------------------

export interface UpdateFirmwareOptions extends CommonOptions {
  location: string;
  requestId?: number;
  /** send request_id -1 (OCPP 1.6 UpdateFirmware) */
  ocpp16?: boolean;
  retries?: number;
  retryInterval?: number;
  retrieveAt?: string;
  installAt?: string;
  /** PEM certificate of the signer */
  signedBy?: string;
  /** private key to sign --image with */
  key?: string;
  /** the bytes --location serves, to compute the signature */
  image?: string;
  /** a ready base64 signature (sent as given, e.g. to test InvalidSignature) */
  signature?: string;
  /** send allow_firmware_installation like libocpp (default true; --no-allow) */
  allow?: boolean;
  /** InstallRebooting ends the run with success (the daemon reboots the board) */
  untilRebooting?: boolean;
  /** overall deadline for an end state */
  timeoutS?: number;
  replyTimeoutS?: number;
}

export const FIRMWARE_FAILURES = new Set(['DownloadFailed', 'InstallationFailed', 'InstallVerificationFailed', 'InvalidSignature']);

/** the request as it will be sent, with the signature computed when asked for */
export async function firmwareRequest(opts: UpdateFirmwareOptions): Promise<FirmwareUpdateRequest> {
  if ((opts.key || opts.image) && !opts.signedBy) throw new ProbeError('--key and --image sign the update; they need --signed-by CERT');
  if (opts.signedBy && !opts.signature && !(opts.key && opts.image)) {
    throw new ProbeError('--signed-by needs --key KEY and --image FILE (the bytes --location serves) to compute the signature, or a ready --signature');
  }
  if (opts.signature && !opts.signedBy) throw new ProbeError('--signature needs --signed-by CERT (the signing certificate goes with it)');
  if (opts.ocpp16 && opts.requestId !== undefined) throw new ProbeError('--ocpp16 sends request_id -1; leave out --request-id');
  const req: FirmwareUpdateRequest = {
    location: opts.location,
    request_id: opts.ocpp16 ? -1 : (opts.requestId ?? randomInt(1, 2 ** 31 - 1)),
  };
  if (opts.retries !== undefined) req.retries = opts.retries;
  if (opts.retryInterval !== undefined) req.retry_interval_s = opts.retryInterval;
  if (opts.retrieveAt) req.retrieve_timestamp = opts.retrieveAt;
  if (opts.installAt) req.install_timestamp = opts.installAt;
  if (opts.signedBy) {
    if (opts.signature) {
      let pem: string;
      try {
        pem = readFileSync(opts.signedBy, 'utf8');
      } catch (err) {
        throw new ProbeError(`cannot read signing certificate ${opts.signedBy}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      req.signing_certificate = pem;
      req.signature = opts.signature;
    } else {
      const signed = await signImage(opts.image!, opts.key!, opts.signedBy);
      req.signing_certificate = signed.signingCertificate!;
      req.signature = signed.signature;
    }
  }
  return req;
}

/** the request for display: credentials out of the URL, the PEM shortened */
function shownFirmwareRequest(req: FirmwareUpdateRequest): Record<string, unknown> {
  const shown: Record<string, unknown> = { ...req, location: redactUrl(req.location) };
  if (req.signing_certificate) shown.signing_certificate = `<PEM certificate, ${req.signing_certificate.length} bytes>`;
  return shown;
}

interface Follow<S extends string> {
  topic: 'firmware_update_status' | 'log_status';
  field: 'firmware_update_status' | 'log_status';
  requestId: number;
  what: string;
  /** final outcome for a status, or undefined to keep following */
  end(status: S): { code: number; message: string } | undefined;
  /** extra work per status of this request (e.g. allow_firmware_installation) */
  onStatus?(status: S): Promise<void> | void;
  timeoutMs: number;
}

/**
 * Collects the statuses of one request from the moment it is called (so none is missed while the
 * request is in flight), starts reporting once `go()` is called, and resolves on an end state,
 * the deadline or Ctrl-C.
 */
function followStatuses<S extends string>(session: ProbeSession, rep: Reporter, f: Follow<S>, signal?: AbortSignal): { go(): Promise<Ended>; stop(): void } {
  const queue: M2eMessage[] = [];
  let started = false;
  let last: S | undefined;
  const since = Date.now();
  let finish: ((e: Ended) => void) | undefined;
  let chain = Promise.resolve();
  const handle = async (m: M2eMessage) => {
    const value = m.value as Record<string, unknown> | undefined;
    const problem = value === undefined ? 'not JSON' : systemApiSchemas().status(f.topic, value);
    if (problem) {
      rep.event('warning', { message: `invalid ${f.topic}: ${problem}`, raw: m.raw.toString().slice(0, 500) }, rep.c.yellow(`warning: invalid ${f.topic} ${show(m.raw.toString())} (${problem}); EVerest drops it`));
      return;
    }
    const status = value![f.field] as S;
    const id = value!.request_id as number;
    if (id !== f.requestId) {
      rep.event('status', { topic: f.topic, status, request_id: id, other_request: true }, rep.c.dim(`← ${f.topic} ${status} for another request (${id})`));
      return;
    }
    last = status;
    rep.event('status', { topic: f.topic, status, request_id: id }, `${rep.c.cyan('←')} ${f.topic} ${rep.status(status)}`);
    await f.onStatus?.(status);
    const end = f.end(status);
    if (end) finish?.({ code: end.code, result: status, message: end.message });
  };
  const onMessage = (m: M2eMessage) => {
    if (m.name !== f.topic) return;
    if (!started) queue.push(m);
    else chain = chain.then(() => handle(m)).catch(() => undefined);
  };
  session.side.on('message', onMessage);
  const stop = () => session.side.off('message', onMessage);
  return {
    stop,
    go: () =>
      new Promise<Ended>((resolve) => {
        const timer = setTimeout(() => {
          done({
            code: EXIT.timeout,
            result: last,
            message: `no end state within ${f.timeoutMs / 1000} s (last ${f.topic}: ${last ?? 'none'})`,
          });
        }, f.timeoutMs);
        const onAbort = () => done({ code: EXIT.interrupted, result: last, message: `interrupted (last ${f.topic}: ${last ?? 'none'})` });
        const done = (e: Ended) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          stop();
          finish = undefined;
          resolve(e);
        };
        finish = done;
        signal?.addEventListener('abort', onAbort, { once: true });
        if (signal?.aborted) onAbort();
        rep.startLive(() => `${rep.c.yellow('…')} ${f.what}: ${last ? rep.status(last) : 'waiting for the first status'} ${rep.c.dim(secs(Date.now() - since))}`);
        started = true;
        for (const m of queue.splice(0)) chain = chain.then(() => handle(m)).catch(() => undefined);
      }),
  };
}

export async function updateFirmware(opts: UpdateFirmwareOptions, io: ProbeIO): Promise<number> {
  const request = await firmwareRequest(opts).catch((err: unknown) => err as Error);
  if (request instanceof Error) return reportEarly(opts, io, request);
  const signed = Boolean(request.signature && request.signing_certificate);
  const trigger = signed ? 'SignatureVerified' : 'Downloaded';
  return withSession(opts, io, async (session, rep) => {
    const follow = followStatuses<string>(
      session,
      rep,
      {
        topic: 'firmware_update_status',
        field: 'firmware_update_status',
        requestId: request.request_id,
        what: `firmware update ${request.request_id}`,
        timeoutMs: (opts.timeoutS ?? 600) * 1000,
        onStatus: async (status) => {
          if (status === trigger && opts.allow !== false) {
            await session.command('allow_firmware_installation', undefined, `as libocpp does after ${trigger}`);
          }
          if (status === 'InstallRebooting' && !opts.untilRebooting) {
            rep.line(rep.c.dim('the daemon reboots the board now; waiting for Installed after the restart (--until-rebooting stops here)'));
          }
        },
        end: (status) => {
          if (status === 'Installed') return { code: EXIT.ok, message: `Installed (request ${request.request_id})` };
          if (status === 'InstallRebooting' && opts.untilRebooting) return { code: EXIT.ok, message: `InstallRebooting (request ${request.request_id}): the daemon reboots into the new firmware` };
          if (FIRMWARE_FAILURES.has(status)) return { code: EXIT.failed, message: `firmware update ${request.request_id} failed: ${status}` };
          return undefined;
        },
      },
      io.signal,
    );
    try {
      const reply = await session.request('update_firmware', request, (opts.replyTimeoutS ?? 10) * 1000, shownFirmwareRequest(request));
      if (reply.value !== 'Accepted' && reply.value !== 'AcceptedCanceled') {
        return { code: EXIT.failed, result: reply.value, message: `update_firmware answered ${JSON.stringify(reply.value)}` };
      }
      return await follow.go();
    } finally {
      follow.stop();
    }
  });
}

// ---------------------------------------------------------------------------
// upload-logs
// ---------------------------------------------------------------------------

export interface UploadLogsOptions extends CommonOptions {
  location: string;
  requestId?: number;
  since?: string;
  until?: string;
  type?: string;
  retries?: number;
  retryInterval?: number;
  timeoutS?: number;
  replyTimeoutS?: number;
}

export const LOG_FAILURES = new Set(['UploadFailure', 'BadMessage', 'NotSupportedOperation', 'PermissionDenied']);

export async function uploadLogs(opts: UploadLogsOptions, io: ProbeIO): Promise<number> {
  const request: UploadLogsRequest = { location: opts.location, type: opts.type ?? 'DiagnosticsLog' };
  if (opts.requestId !== undefined) request.request_id = opts.requestId;
  if (opts.since) request.oldest_timestamp = opts.since;
  if (opts.until) request.latest_timestamp = opts.until;
  if (opts.retries !== undefined) request.retries = opts.retries;
  if (opts.retryInterval !== undefined) request.retry_interval_s = opts.retryInterval;
  // without a request_id (OCPP 1.6 GetDiagnostics) the daemon reports its statuses with -1
  const statusId = opts.requestId ?? -1;
  return withSession(opts, io, async (session, rep) => {
    const follow = followStatuses<string>(
      session,
      rep,
      {
        topic: 'log_status',
        field: 'log_status',
        requestId: statusId,
        what: `log upload ${statusId}`,
        timeoutMs: (opts.timeoutS ?? 600) * 1000,
        end: (status) => {
          if (status === 'Uploaded') return { code: EXIT.ok, message: `Uploaded (request ${statusId})` };
          if (LOG_FAILURES.has(status)) return { code: EXIT.failed, message: `log upload ${statusId} failed: ${status}` };
          return undefined;
        },
      },
      io.signal,
    );
    try {
      const reply = await session.request('upload_logs', request, (opts.replyTimeoutS ?? 10) * 1000, { ...request, location: redactUrl(request.location) });
      const value = reply.value as { upload_logs_status?: string; file_name?: string } | undefined;
      if (value?.upload_logs_status !== 'Accepted' && value?.upload_logs_status !== 'AcceptedCanceled') {
        return { code: EXIT.failed, result: reply.value, message: `upload_logs answered ${JSON.stringify(reply.value)}` };
      }
      if (value.file_name) rep.line(`file name: ${rep.c.bold(value.file_name)}`);
      const ended = await follow.go();
      return { ...ended, result: { status: ended.result, file_name: value.file_name } };
    } finally {
      follow.stop();
    }
  });
}

// ---------------------------------------------------------------------------
// one request, one reply; fire-and-forget commands
// ---------------------------------------------------------------------------

const timeout = (opts: RequestOptions) => (opts.timeoutS ?? 10) * 1000;

/** invalid replies (EVerest would drop them) end with exit 1 */
function invalid(op: string, value: unknown): Ended | undefined {
  const problem = value === undefined ? 'not JSON' : systemApiSchemas().reply(op, value);
  return problem ? { code: EXIT.failed, result: value ?? null, message: `${op}: invalid reply (${problem})` } : undefined;
}

export function isResetAllowed(type: ResetType, opts: RequestOptions, io: ProbeIO): Promise<number> {
  return withSession(opts, io, async (session) => {
    const { value } = await session.request('is_reset_allowed', type, timeout(opts));
    return invalid('is_reset_allowed', value) ?? (value === true ? { code: EXIT.ok, result: true, message: `${type} reset allowed` } : { code: EXIT.failed, result: false, message: `${type} reset not allowed` });
  });
}

export function reset(type: ResetType, scheduled: boolean, opts: CommonOptions, io: ProbeIO): Promise<number> {
  return withSession(opts, io, async (session) => {
    await session.command('reset', { type, scheduled });
    return { code: EXIT.ok, message: `${scheduled ? 'scheduled ' : ''}${type} reset sent (no reply expected)` };
  });
}

export function allowInstallation(opts: CommonOptions, io: ProbeIO): Promise<number> {
  return withSession(opts, io, async (session) => {
    await session.command('allow_firmware_installation');
    return { code: EXIT.ok, message: 'allow_firmware_installation sent (no reply expected)' };
  });
}

export function setTime(time: string | undefined, opts: RequestOptions, io: ProbeIO): Promise<number> {
  const value = time ?? new Date().toISOString();
  return withSession(opts, io, async (session) => {
    const reply = await session.request('set_system_time', value, timeout(opts));
    return invalid('set_system_time', reply.value) ?? (reply.value === true ? { code: EXIT.ok, result: true, message: `system time set to ${value}` } : { code: EXIT.failed, result: false, message: `set_system_time ${value} answered false` });
  });
}

export function bootReason(opts: RequestOptions, io: ProbeIO): Promise<number> {
  return withSession(opts, io, async (session) => {
    const { value } = await session.request('get_boot_reason', undefined, timeout(opts));
    return invalid('get_boot_reason', value) ?? { code: EXIT.ok, result: value, message: `boot reason ${String(value)}` };
  });
}

/** An error found before connecting, reported the same way as any other end. */
async function reportEarly(opts: CommonOptions, io: ProbeIO, err: Error): Promise<number> {
  if (!(err instanceof ProbeError)) throw err;
  const rep = new Reporter(io, opts.json === true);
  if (rep.json) rep.event('end', { ok: false, exit_code: err.exitCode, message: err.message, duration_ms: 0 });
  rep.error(rep.json ? err.message : `${rep.c.red('✖')} ${err.message}`);
  return err.exitCode;
}
