/**
 * log-upload: answers `upload_logs` and publishes `log_status` (OCPP GetLog / GetDiagnostics).
 *
 * A request is answered at once ({Accepted|AcceptedCanceled|Rejected, file_name}); the work runs
 * after the reply: the log sources bound in `adapters.logSources` that serve the request's type
 * collect their files for the time window into a size-capped, redacted .tar.gz with a manifest
 * (see archive.ts), which is then uploaded to `location` (core/net/upload.ts).
 *
 * Statuses: Uploading, then Uploaded or the most precise failure (UploadFailure, PermissionDenied,
 * BadMessage, NotSupportedOperation). A new request while one runs cancels it: the old request id
 * gets AcceptedCanceled. EVerest's OCPP 1.6 path cannot convert some values (and does not catch
 * the error), so for request_id -1 (GetDiagnostics) only Uploading, Uploaded and UploadFailure are
 * published, and with `ocppVersion: "1.6"` never AcceptedCanceled.
 *
 * Temporary files live in one work directory, emptied at start and after every request. A request
 * interrupted by a crash or a shutdown is reported as UploadFailure (on the next start).
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { inject, injectable } from 'tsyringe';
import {
  API_VERSION,
  TOKENS,
  type Handlers,
  type LogSource,
  type LogStatusEnum,
  type LogWindow,
  type Plugin,
  type PluginContext,
  type UploadLogsRequest,
  type UploadLogsResponse,
} from '../../core/api.js';
import { checkUrl } from '../../core/net/url.js';
import { upload, UPLOAD_SCHEMES } from '../../core/net/upload.js';
import { ArchiveBuilder, type StagedEntry } from './archive.js';
import { makeRedactor, type RedactRule, type Redactor } from './redact.js';

export interface LogUploadOptions {
  stationId?: string;
  ocppVersion: '1.6' | '2.0.1' | '2.1';
  httpMethod: 'PUT' | 'POST';
  retries: number;
  retryIntervalS: number;
  maxArchiveBytes: number;
  compressionLevel: number;
  redact: RedactRule[];
  tempDir?: string;
  idleTimeoutMs: number;
  tls: { caFiles?: string[]; rejectUnauthorized?: boolean };
}

interface Job {
  requestId: number;
  fileName: string;
  type: string;
  url: URL;
  redactedUrl: string;
  window: LogWindow;
  attempts: number;
  retryIntervalMs: number;
  sources: LogSource[];
  request: UploadLogsRequest;
  ac: AbortController;
  /** the end state is decided: too late to cancel */
  finished: boolean;
  endStatus?: LogStatusEnum;
  done: Promise<void>;
}

/** What the 1.6 GetDiagnostics path (request_id -1) can convert. */
const DIAGNOSTICS_STATUSES: readonly LogStatusEnum[] = ['Idle', 'Uploading', 'Uploaded', 'UploadFailure'];
const JOB_KEY = 'job';
const DEFAULT_TYPE = 'DiagnosticsLog';

@injectable()
export default class LogUploadPlugin implements Plugin {
  static readonly pluginName = 'log-upload';
  static readonly apiVersion = API_VERSION;
  static readonly operations = ['upload_logs'] as const;
  static readonly adapters = ['logSources'] as const;
  static readonly optionsSchema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      stationId: { type: 'string', minLength: 1, maxLength: 64, description: 'first part of the file name; default: host name' },
      ocppVersion: { enum: ['1.6', '2.0.1', '2.1'], default: '2.0.1', description: '"1.6": never publish AcceptedCanceled' },
      httpMethod: { enum: ['PUT', 'POST'], default: 'PUT', description: 'POST sends multipart/form-data' },
      retries: { type: 'integer', minimum: 1, maximum: 100, default: 3, description: 'total attempts when the request has no retries' },
      retryIntervalS: { type: 'integer', minimum: 0, maximum: 86400, default: 60, description: 'wait between attempts when the request has no retry_interval_s' },
      maxArchiveBytes: { type: 'integer', minimum: 4096, default: 50 * 1024 * 1024, description: 'size cap of the archive; oldest content is dropped first' },
      compressionLevel: { type: 'integer', minimum: 1, maximum: 9, default: 6 },
      redact: {
        type: 'array',
        default: [],
        description: 'secrets removed from every collected text: literal strings and/or {"regex": "...", "flags": "i"}',
        items: {
          oneOf: [
            { type: 'string', minLength: 1 },
            {
              type: 'object',
              additionalProperties: false,
              required: ['regex'],
              properties: { regex: { type: 'string', minLength: 1 }, flags: { type: 'string', pattern: '^[imsu]*$' } },
            },
          ],
        },
      },
      tempDir: { type: 'string', minLength: 1, description: 'work directory for archives; default: <stateDir>/log-upload/tmp' },
      idleTimeoutMs: { type: 'integer', minimum: 1000, default: 60_000 },
      tls: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          caFiles: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'extra CA certificates (PEM files) for https/ftps' },
          rejectUnauthorized: { type: 'boolean', default: true },
        },
      },
    },
  };

  readonly #ctx: PluginContext;
  readonly #sources: LogSource[];
  readonly #options: LogUploadOptions;
  readonly #redactor: Redactor | undefined;
  readonly #workDir: string;
  readonly #stationId: string;
  #ca: string[] = [];
  #current: Job | undefined;
  #stopping = false;

  constructor(@inject(TOKENS.Context) ctx: PluginContext, @inject(TOKENS.LogSources) sources: LogSource[]) {
    this.#ctx = ctx;
    this.#sources = Array.isArray(sources) ? sources : [];
    this.#options = ctx.options as unknown as LogUploadOptions;
    // an invalid regex is a configuration error: refusing to start beats uploading secrets
    this.#redactor = makeRedactor(this.#options.redact);
    this.#workDir = this.#options.tempDir ?? path.join(ctx.state.dir, 'tmp');
    this.#stationId = safePart(this.#options.stationId ?? os.hostname(), 64) || 'station';
  }

  handlers(): Handlers {
    return { upload_logs: (payload) => this.#request(payload) };
  }

  async start(): Promise<void> {
    // leftovers of a run that crashed mid-request
    await fsp.rm(this.#workDir, { recursive: true, force: true });
    await fsp.mkdir(this.#workDir, { recursive: true, mode: 0o700 });
    this.#ca = [];
    for (const f of this.#options.tls?.caFiles ?? []) this.#ca.push(await fsp.readFile(f, 'utf8'));
    const interrupted = await this.#ctx.state.get<{ requestId: number; fileName: string }>(JOB_KEY);
    if (interrupted && typeof interrupted.requestId === 'number') {
      this.#ctx.log.warn({ requestId: interrupted.requestId, fileName: interrupted.fileName }, 'a log upload was interrupted by a restart; reporting UploadFailure');
      this.#publish(interrupted.requestId, 'UploadFailure', true);
      await this.#ctx.state.delete(JOB_KEY);
    }
    this.#ctx.log.info(
      { sources: this.#sources.map((s) => ({ type: s.type, logTypes: s.logTypes ?? 'all' })), workDir: this.#workDir, redactRules: this.#redactor?.rules ?? 0 },
      'log upload ready',
    );
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const job = this.#current;
    if (job) {
      job.ac.abort();
      await job.done;
    }
  }

  // -------------------------------------------------------------------------

  #request(payload: unknown): UploadLogsResponse {
    const log = this.#ctx.log;
    const parsed = parseRequest(payload);
    if (typeof parsed === 'string') {
      log.warn({ reason: parsed }, 'upload_logs rejected: invalid request');
      return { upload_logs_status: 'Rejected' };
    }
    const req = parsed;
    const checked = checkUrl(req.location, UPLOAD_SCHEMES, log);
    if (!checked.ok) {
      log.warn({ location: checked.redacted, reason: checked.reason }, 'upload_logs rejected: location not usable');
      return { upload_logs_status: 'Rejected' };
    }
    const type = req.type ?? DEFAULT_TYPE;
    const sources = this.#sources.filter((s) => !s.logTypes || s.logTypes.includes(type));
    if (sources.length === 0) {
      log.warn({ type }, 'upload_logs rejected: no configured log source serves this log type');
      return { upload_logs_status: 'Rejected' };
    }
    if (this.#stopping) {
      log.warn('upload_logs rejected: shutting down');
      return { upload_logs_status: 'Rejected' };
    }
    const requestId = req.request_id ?? -1;
    const fileName = makeFileName(this.#stationId, type, requestId, new Date());
    const job: Job = {
      requestId,
      fileName,
      type,
      url: checked.url,
      redactedUrl: checked.redacted,
      window: { since: req.oldest_timestamp ? new Date(req.oldest_timestamp) : undefined, until: req.latest_timestamp ? new Date(req.latest_timestamp) : undefined },
      attempts: req.retries ?? this.#options.retries,
      retryIntervalMs: (req.retry_interval_s ?? this.#options.retryIntervalS) * 1000,
      sources,
      request: req,
      ac: new AbortController(),
      finished: false,
      done: Promise.resolve(),
    };
    const previous = this.#current && !this.#current.finished ? this.#current : undefined;
    if (previous) {
      log.info({ canceled: previous.requestId, by: requestId }, 'new log request: canceling the running one');
      previous.finished = true;
      previous.ac.abort();
      this.#publish(previous.requestId, 'AcceptedCanceled', true);
    }
    const before = this.#current?.done ?? Promise.resolve();
    this.#current = job;
    job.done = before.then(() => this.#run(job)).catch((err: unknown) => {
      log.error({ err: String(err) }, 'log upload failed unexpectedly');
    });
    log.info(
      { requestId, type, fileName, location: checked.redacted, since: job.window.since, until: job.window.until, attempts: job.attempts },
      previous ? 'upload_logs accepted, previous request canceled' : 'upload_logs accepted',
    );
    return { upload_logs_status: previous ? 'AcceptedCanceled' : 'Accepted', file_name: fileName };
  }

  async #run(job: Job): Promise<void> {
    const log = this.#ctx.log.child({ requestId: job.requestId });
    if (job.ac.signal.aborted) return;
    const dir = path.join(this.#workDir, `${Date.now()}-${randomBytes(4).toString('hex')}`);
    const signal = job.ac.signal;
    const t0 = Date.now();
    try {
      await this.#ctx.state.set(JOB_KEY, { requestId: job.requestId, fileName: job.fileName, startedAt: new Date().toISOString() });
      this.#publish(job.requestId, 'Uploading', false);
      const builder = new ArchiveBuilder({ dir: path.join(dir, 'stage'), redactor: this.#redactor, level: this.#options.compressionLevel, signal });
      await builder.init();
      const report: { type: string; logTypes?: readonly string[]; ok: boolean; error?: string; ms: number }[] = [];
      for (const source of job.sources) {
        const s0 = Date.now();
        try {
          await source.collect(job.window, builder.sink(source.type, source.type), signal);
          report.push({ type: source.type, logTypes: source.logTypes, ok: true, ms: Date.now() - s0 });
        } catch (err) {
          signal.throwIfAborted();
          const msg = (err as Error).message ?? String(err);
          log.warn({ source: source.type, err: msg }, 'log source failed; going on with the others');
          report.push({ type: source.type, logTypes: source.logTypes, ok: false, error: msg, ms: Date.now() - s0 });
        }
      }
      signal.throwIfAborted();
      const archive = path.join(dir, job.fileName);
      const packed = await builder.pack(archive, this.#options.maxArchiveBytes, ({ included, dropped }) => ({
        format: 1,
        fileName: job.fileName,
        createdAt: new Date().toISOString(),
        stationId: this.#stationId,
        request: {
          requestId: job.requestId,
          type: job.type,
          oldestTimestamp: job.request.oldest_timestamp,
          latestTimestamp: job.request.latest_timestamp,
        },
        window: { since: job.window.since?.toISOString() ?? null, until: job.window.until?.toISOString() ?? null },
        sources: report,
        files: included.map(describe),
        dropped,
        maxArchiveBytes: this.#options.maxArchiveBytes,
        redaction: { rules: this.#redactor?.rules ?? 0 },
        notes: builder.notes,
      }));
      log.info(
        { bytes: packed.bytes, files: packed.included.length, dropped: packed.dropped.length, collectMs: Date.now() - t0 },
        'log archive ready, uploading',
      );
      const result = await upload({
        url: job.url,
        file: archive,
        fileName: job.fileName,
        method: this.#options.httpMethod,
        signal,
        attempts: job.attempts,
        retryIntervalMs: job.retryIntervalMs,
        idleTimeoutMs: this.#options.idleTimeoutMs,
        tls: { ca: this.#ca, rejectUnauthorized: this.#options.tls?.rejectUnauthorized },
        onAttempt: (attempt) => {
          if (attempt > 1) log.info({ attempt, of: job.attempts }, 'retrying the log upload');
        },
      });
      if (result.ok) {
        this.#end(job, 'Uploaded');
        log.info({ location: job.redactedUrl, bytes: result.bytes, ms: Date.now() - t0 }, 'logs uploaded');
      } else if (result.failure === 'aborted') {
        this.#aborted(job, log);
      } else {
        log.warn({ location: job.redactedUrl, failure: result.failure, reason: result.reason }, 'log upload failed');
        this.#end(job, result.failure);
      }
    } catch (err) {
      if (signal.aborted) this.#aborted(job, log);
      else {
        log.error({ err: (err as Error).message ?? String(err) }, 'log collection failed');
        this.#end(job, 'UploadFailure');
      }
    } finally {
      await fsp.rm(dir, { recursive: true, force: true }).catch((err: unknown) => log.warn({ err: String(err) }, 'could not remove temp files'));
      // a crash from here on loses the end state rather than reporting a contradicting one later
      await this.#ctx.state.delete(JOB_KEY).catch(() => undefined);
      if (job.endStatus) this.#publish(job.requestId, job.endStatus, true);
      if (this.#current === job) this.#current = undefined;
    }
  }

  /** aborted: by a newer request (it published AcceptedCanceled) or by shutdown */
  #aborted(job: Job, log: PluginContext['log']): void {
    if (this.#stopping && !job.finished) {
      log.warn('log upload interrupted by shutdown');
      this.#end(job, 'UploadFailure');
    } else log.info('log upload canceled');
  }

  /** the end state of `job`; published by #run once its temporary files are gone */
  #end(job: Job, status: LogStatusEnum): void {
    if (job.finished) return;
    job.finished = true;
    job.endStatus = status;
  }

  #publish(requestId: number, status: LogStatusEnum, final: boolean): void {
    let s = status;
    if (s === 'AcceptedCanceled' && (this.#options.ocppVersion === '1.6' || requestId === -1)) {
      this.#ctx.log.debug({ requestId }, 'AcceptedCanceled not published (OCPP 1.6 cannot convert it)');
      return;
    }
    if (requestId === -1 && !DIAGNOSTICS_STATUSES.includes(s)) s = 'UploadFailure';
    this.#ctx.publish('log_status', { log_status: s, request_id: requestId }, { final });
  }
}

function describe(e: StagedEntry) {
  return {
    name: e.name,
    source: e.source,
    size: e.size,
    mtime: e.mtime.toISOString(),
    ...(e.truncatedBytes ? { truncatedBytes: e.truncatedBytes, truncatedReason: 'oldest part dropped to fit maxArchiveBytes' } : {}),
  };
}

/** [A-Za-z0-9._-] only, no leading dot or dash, at most `max` characters. */
function safePart(s: string, max: number): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[.-]+/, '').slice(0, max);
}

/** `<station>_<type>[_<id>]_<yyyymmddThhmmssZ>.tar.gz`, safe characters, well under 255. */
export function makeFileName(stationId: string, type: string, requestId: number, now: Date): string {
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
  const parts = [safePart(stationId, 64) || 'station', safePart(type, 40) || 'Log'];
  if (requestId !== -1) parts.push(String(requestId));
  parts.push(stamp);
  return `${parts.join('_')}.tar.gz`;
}

const TS = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** The checked request, or why it is invalid. */
export function parseRequest(p: unknown): UploadLogsRequest | string {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return 'payload is not an object';
  const r = p as Record<string, unknown>;
  if (typeof r.location !== 'string' || r.location === '') return 'location is missing';
  const int = (k: string, min: number) => {
    const v = r[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) return `${k} must be an integer >= ${min}`;
    return undefined;
  };
  for (const [k, min] of [['request_id', -1], ['retries', 1], ['retry_interval_s', 0]] as const) {
    const e = int(k, min);
    if (e) return e;
  }
  for (const k of ['oldest_timestamp', 'latest_timestamp'] as const) {
    const v = r[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !TS.test(v) || Number.isNaN(Date.parse(v))) return `${k} is not an RFC 3339 time`;
  }
  if (r.type !== undefined && (typeof r.type !== 'string' || r.type === '' || r.type.length > 100)) return 'type must be a non-empty string';
  if (r.oldest_timestamp && r.latest_timestamp && Date.parse(r.oldest_timestamp as string) > Date.parse(r.latest_timestamp as string)) {
    return 'oldest_timestamp is after latest_timestamp';
  }
  return r as unknown as UploadLogsRequest;
}
