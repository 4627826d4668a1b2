/**
 * The firmware update state machine: one update at a time, every phase persisted before it is
 * acted on, so that a restart (or a power loss) at any point ends in a truthful report.
 *
 *   download-scheduled -> downloading -> verifying -> awaiting -> installing -> (rebooting -> confirming)
 *                                                                           \-> finished
 *
 * `finished` holds the end status until it has been published, then the record is deleted.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { X509Certificate } from 'node:crypto';
import type {
  BootReasonStore,
  FirmwareUpdateStatusEnum,
  InstallerAdapter,
  Logger,
  PowerAdapter,
  RequestControl,
  StateStore,
  UpdateFirmwareResponse,
} from '../../core/api.js';
import type { DownloadOptions, DownloadResult } from '../../core/net/types.js';
import type { FirmwareUpdateOptions } from './options.js';
import { checkRequest, redactLocation, type ValidRequest } from './request.js';
import { checkSigningCertificate, decodeSignature, verifyFileSignature } from './signature.js';
import { waitUntil, Wakeup } from './wait.js';

/** Statuses an installer may report while it runs; its end states come from its outcome. */
const INSTALLER_STATUSES: ReadonlySet<FirmwareUpdateStatusEnum> = new Set(['Installing', 'InstallRebooting']);

export type Phase =
  | 'download-scheduled'
  | 'downloading'
  | 'verifying'
  | 'awaiting'
  | 'installing'
  | 'rebooting'
  | 'confirming'
  | 'finished';

/** The persisted record of the one update in progress (state key `job`). */
export interface Job {
  requestId: number;
  location: string;
  attempts: number;
  retryIntervalS: number;
  /** epoch ms */
  retrieveAt?: number;
  /** epoch ms */
  installAt?: number;
  signature?: string;
  certificate?: string;
  phase: Phase;
  /** image file name under the state dir */
  file: string;
  sha256?: string;
  /** allow_firmware_installation has arrived */
  permission: boolean;
  /** epoch ms after which waiting for permission gives up */
  permissionDeadline?: number;
  confirmData?: Record<string, unknown>;
  /** confirmations started after the reboot (a power loss can cut one short) */
  confirmStarts?: number;
  /** end status, set in phase `finished` */
  final?: FirmwareUpdateStatusEnum;
  acceptedAt: string;
}

export const JOB_KEY = 'job';
/** A confirmation cut short this many times ends the update as InstallationFailed. */
const MAX_CONFIRM_STARTS = 3;
const IMAGE_PREFIX = 'image-';

/** Statuses libocpp v16 can send for request_id -1 (plain FirmwareStatusNotification). */
const V16_PLAIN = new Set<FirmwareUpdateStatusEnum>([
  'Downloaded', 'DownloadFailed', 'Downloading', 'Idle', 'InstallationFailed', 'Installing', 'Installed',
]);
/** Phases in which a new request cancels the running one. */
const CANCELLABLE = new Set<Phase>(['download-scheduled', 'downloading', 'verifying', 'awaiting']);
/** Phases in which allow_firmware_installation counts. */
const PERMISSION_PHASES = new Set<Phase>(['verifying', 'awaiting']);

export type DownloadFn = (options: DownloadOptions) => Promise<DownloadResult>;

export interface UpdaterDeps {
  log: Logger;
  options: FirmwareUpdateOptions;
  state: StateStore;
  publish(status: FirmwareUpdateStatusEnum, requestId: number, final: boolean): void;
  installer: InstallerAdapter;
  power: PowerAdapter;
  bootReason: BootReasonStore;
  download: DownloadFn;
  /** free bytes in a directory */
  freeBytes(dir: string): Promise<number>;
  /** trust anchors and TLS CA texts, loaded at start */
  trustAnchors: readonly X509Certificate[];
  tlsCa: readonly string[];
}

interface Active {
  job: Job;
  ctl: AbortController;
  wake: Wakeup;
  done: Promise<void>;
  lastStatus?: FirmwareUpdateStatusEnum;
}

const STOP = 'stop';
const CANCEL = 'cancel';

export class FirmwareUpdater {
  private active?: Active;
  /** serialises state writes so that an older write never lands after a newer one */
  private writes: Promise<unknown> = Promise.resolve();
  /** serialises the entry points (requests, permission, start) */
  private entry: Promise<unknown> = Promise.resolve();
  private stopping = false;

  constructor(private readonly d: UpdaterDeps) {}

  /** The phase of the update in progress, if any. */
  get phase(): Phase | undefined {
    return this.active?.job.phase;
  }

  /** A reason to refuse resets right now, or undefined. */
  resetVeto(): string | undefined {
    const p = this.active?.job.phase;
    return p === 'installing' || p === 'confirming' ? `firmware ${p} (request ${this.active!.job.requestId})` : undefined;
  }

  // -------------------------------------------------------------------------------------------
  // entry points
  // -------------------------------------------------------------------------------------------

  /**
   * Answers update_firmware. What needs no state (the request, its location, its certificate) is
   * checked at once; the rest waits its turn behind earlier requests. `meta.commit()` is called
   * right before the update is started, so an update is never started for a request whose safe
   * reply (Rejected) the core has already sent.
   */
  handleRequest(payload: unknown, meta?: RequestControl): UpdateFirmwareResponse | Promise<UpdateFirmwareResponse> {
    const checked = this.check(payload);
    if (typeof checked === 'string') return checked;
    return this.serial(() => this.accept(checked, meta));
  }

  handlePermission(): Promise<void> {
    return this.serial(async () => {
      const a = this.active;
      if (!a || !PERMISSION_PHASES.has(a.job.phase)) {
        this.d.log.debug({ phase: a?.job.phase }, 'allow_firmware_installation: no update waits for permission, ignored');
        return;
      }
      if (a.job.permission) {
        this.d.log.debug({ requestId: a.job.requestId }, 'allow_firmware_installation repeated, ignored');
        return;
      }
      a.job.permission = true;
      await this.persist(a.job);
      this.d.log.info({ requestId: a.job.requestId }, 'installation allowed');
      a.wake.notify();
    });
  }

  /** Restore persisted work after a restart or a reboot. */
  start(): Promise<void> {
    return this.serial(async () => {
      await fsp.mkdir(this.d.state.dir, { recursive: true });
      const job = await this.d.state.get<Job>(JOB_KEY);
      await this.removeStrayImages(job && isJob(job) ? job.file : undefined);
      if (!job) return;
      if (!isJob(job)) {
        this.d.log.error({ job }, 'persisted firmware update record is malformed; dropped');
        await this.d.state.delete(JOB_KEY);
        return;
      }
      const log = this.d.log.child({ requestId: job.requestId });
      const a = this.adopt(job);
      switch (job.phase) {
        case 'download-scheduled':
          log.info({ retrieveAt: iso(job.retrieveAt) }, 'restoring scheduled download');
          this.publish(a, 'DownloadScheduled');
          break;
        case 'downloading':
          log.info({ location: redactLocation(job.location) }, 'resuming interrupted download');
          this.publish(a, 'Downloading');
          break;
        case 'verifying':
          log.info('verifying the downloaded image again after a restart');
          this.publish(a, 'Downloaded');
          break;
        case 'awaiting':
          log.info({ installAt: iso(job.installAt), permission: job.permission }, 'restoring update waiting to install');
          this.publish(a, job.signature ? 'SignatureVerified' : 'Downloaded');
          if (job.installAt !== undefined && job.installAt > Date.now()) this.publish(a, 'InstallScheduled');
          break;
        case 'installing':
          log.error('an installation was interrupted (restart or power loss); it is not repeated');
          job.phase = 'finished';
          job.final = 'InstallationFailed';
          break;
        case 'rebooting':
        case 'confirming':
          // Confirming is idempotent in every installer (it checks which image is booted, runs
          // the health check, commits): a confirmation cut short by a power loss, possibly after
          // it had committed the image, is run again so the report tells the truth. Bounded, so
          // that a confirmation that itself brings the board down cannot loop forever.
          if ((job.confirmStarts ?? 0) >= MAX_CONFIRM_STARTS) {
            log.error({ starts: job.confirmStarts }, 'confirming the new firmware was interrupted too often; giving up');
            job.phase = 'finished';
            job.final = 'InstallationFailed';
            break;
          }
          if (job.phase === 'confirming') log.warn({ starts: job.confirmStarts }, 'confirming the new firmware was interrupted; confirming again');
          job.phase = 'confirming';
          job.confirmStarts = (job.confirmStarts ?? 0) + 1;
          // persisted before confirming, so every start of a confirmation is counted
          await this.persist(job);
          break;
        case 'finished':
          break;
      }
      this.launch(a);
    });
  }

  /** Stop work without reporting; persisted state stays for the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    const a = this.active;
    if (!a) return;
    a.ctl.abort(STOP);
    await a.done;
  }

  // -------------------------------------------------------------------------------------------
  // accepting a request
  // -------------------------------------------------------------------------------------------

  /** The checks that need no state: the request, or the reply that refuses it. */
  private check(payload: unknown): ValidRequest | UpdateFirmwareResponse {
    const { options, log } = this.d;
    const checked = checkRequest(payload, {
      allowedSchemes: options.allowedSchemes,
      defaultAttempts: options.retries,
      defaultRetryIntervalS: options.retryIntervalS,
    });
    const requestId = (payload as { request_id?: unknown } | null)?.request_id;
    if (!checked.ok) {
      log.warn({ requestId, location: checked.redacted, reason: checked.reason }, 'update_firmware rejected: invalid request');
      return 'Rejected';
    }
    const req = checked.request;
    const rlog = log.child({ requestId: req.requestId });
    if (req.signed) {
      const cert = checkSigningCertificate(req.signed.certificate, this.d.trustAnchors);
      if (!cert.ok) {
        rlog.warn({ reason: cert.reason }, 'update_firmware: invalid signing certificate');
        return 'InvalidCertificate';
      }
      if (!decodeSignature(req.signed.signature)) {
        rlog.warn('update_firmware rejected: signature is not base64');
        return 'Rejected';
      }
    } else if (options.requireSignature) {
      rlog.warn('update_firmware rejected: unsigned update but requireSignature is set');
      return 'Rejected';
    }
    return req;
  }

  private async accept(req: ValidRequest, meta?: RequestControl): Promise<UpdateFirmwareResponse> {
    const { options, log } = this.d;
    const rlog = log.child({ requestId: req.requestId });
    if (meta?.signal.aborted) {
      rlog.warn('update_firmware: its turn came after the safe reply (Rejected) was sent; not started');
      return 'Rejected';
    }
    if (this.stopping) {
      rlog.warn('update_firmware rejected: shutting down');
      return 'Rejected';
    }
    let cur = this.active;
    if (cur?.job.phase === 'finished') {
      // an update is just ending; let it finish instead of refusing the new one
      await cur.done;
      cur = this.active;
    }
    if (cur && !CANCELLABLE.has(cur.job.phase)) {
      rlog.warn(
        { running: cur.job.requestId, phase: cur.job.phase },
        req.requestId === -1
          ? 'update_firmware (OCPP 1.6) refused: an installation is running and cannot be cancelled'
          : 'update_firmware rejected: an installation is running and cannot be cancelled',
      );
      return 'Rejected';
    }
    let free: number;
    try {
      free = await this.d.freeBytes(this.d.state.dir);
    } catch (err) {
      rlog.error({ err: String(err) }, 'update_firmware rejected: cannot read free disk space');
      return 'Rejected';
    }
    if (free < options.minFreeBytes) {
      rlog.warn({ free, required: options.minFreeBytes }, 'update_firmware rejected: not enough free disk space');
      return 'Rejected';
    }

    // the point of no return: from here the running update is cancelled and the new one starts
    if (meta && !meta.commit()) {
      rlog.warn('update_firmware: the safe reply (Rejected) was sent meanwhile; not started');
      return 'Rejected';
    }
    let reply: UpdateFirmwareResponse = 'Accepted';
    let previous: Promise<void> | undefined;
    if (cur) {
      rlog.info({ cancelled: cur.job.requestId, phase: cur.job.phase }, 'cancelling the running update for the new request');
      cur.ctl.abort(CANCEL);
      this.active = undefined;
      reply = 'AcceptedCanceled';
      previous = cur.done;
    }
    const job = newJob(req);
    const a = this.adopt(job);
    await this.persist(job);
    rlog.info(
      { location: req.redacted, signed: Boolean(req.signed), retrieveAt: iso(req.retrieveAt), installAt: iso(req.installAt) },
      'firmware update accepted',
    );
    if (job.phase === 'download-scheduled') this.publish(a, 'DownloadScheduled');
    else this.publish(a, 'Downloading');
    // the cancelled runner stops promptly (its download is aborted); the new one starts once it
    // has, or after 2 s at most, and the reply does not wait for either
    this.launch(a, previous && Promise.race([previous, new Promise<void>((r) => setTimeout(r, 2000).unref())]));
    return reply;
  }

  // -------------------------------------------------------------------------------------------
  // running an update
  // -------------------------------------------------------------------------------------------

  private adopt(job: Job): Active {
    const a: Active = { job, ctl: new AbortController(), wake: new Wakeup(), done: Promise.resolve() };
    this.active = a;
    return a;
  }

  private launch(a: Active, after?: Promise<void>): void {
    a.done = (after ? after.then(() => this.run(a)) : this.run(a)).catch(async (err: unknown) => {
      this.d.log.error({ requestId: a.job.requestId, phase: a.job.phase, err: String(err) }, 'firmware update failed unexpectedly');
      if (!a.ctl.signal.aborted && this.active === a) {
        await this.finish(a, a.job.phase === 'downloading' ? 'DownloadFailed' : 'InstallationFailed').catch(() => undefined);
      }
    });
  }

  private async run(a: Active): Promise<void> {
    const { job, ctl: { signal } } = a;
    const log = this.d.log.child({ requestId: job.requestId });
    const imagePath = path.join(this.d.state.dir, job.file);
    for (;;) {
      if (signal.aborted) return this.aborted(a);
      switch (job.phase) {
        case 'download-scheduled': {
          await waitUntil(job.retrieveAt, signal, new Wakeup());
          if (signal.aborted) return this.aborted(a);
          log.info('scheduled download starts');
          await this.enter(a, 'downloading', 'Downloading');
          break;
        }

        case 'downloading': {
          const result = await this.d.download({
            url: new URL(job.location),
            dest: imagePath,
            resume: true,
            signal,
            attempts: job.attempts,
            retryIntervalMs: job.retryIntervalS * 1000,
            tls: {
              ca: this.d.tlsCa.length > 0 ? [...this.d.tlsCa] : undefined,
              rejectUnauthorized: this.d.options.tls.rejectUnauthorized,
            },
            maxBytes: this.d.options.maxImageBytes,
            onEvent: (e) => {
              if (signal.aborted) return;
              if (e.type === 'paused') {
                log.warn({ bytes: e.bytes, inMs: e.inMs, reason: e.reason }, 'download paused');
                this.publish(a, 'DownloadPaused');
              } else if ((e.type === 'resumed' || e.type === 'attempt') && a.lastStatus !== 'Downloading') {
                this.publish(a, 'Downloading');
              }
            },
          });
          if (signal.aborted) return this.aborted(a);
          if (!result.ok) {
            log.warn({ failure: result.failure, reason: result.reason, bytes: result.bytes, location: redactLocation(job.location) }, 'download failed');
            return this.finish(a, 'DownloadFailed');
          }
          log.info({ bytes: result.bytes, sha256: result.sha256 }, 'downloaded');
          job.sha256 = result.sha256;
          await this.enter(a, 'verifying', 'Downloaded');
          break;
        }

        case 'verifying': {
          if (job.signature && job.certificate) {
            const cert = checkSigningCertificate(job.certificate, this.d.trustAnchors);
            const sig = decodeSignature(job.signature);
            const good = cert.ok && sig !== undefined && (await verifyFileSignature(imagePath, sig, cert.certificate, signal));
            if (signal.aborted) return this.aborted(a);
            if (!good) {
              log.warn({ reason: cert.ok ? 'signature does not match the image' : cert.reason }, 'signature verification failed');
              return this.finish(a, job.requestId === -1 ? 'InstallationFailed' : 'InvalidSignature');
            }
            log.info('signature verified');
          }
          if (this.d.installer.inspect) {
            const r = await this.d.installer.inspect(imagePath, signal).catch((err: unknown) => ({ ok: false, message: String(err) }));
            if (signal.aborted) return this.aborted(a);
            if (!r.ok) {
              log.warn({ installer: this.d.installer.type, message: r.message }, 'installer refused the image');
              return this.finish(a, job.requestId === -1 ? 'InstallationFailed' : 'InstallVerificationFailed');
            }
          }
          const { installPermission, permissionTimeoutS } = this.d.options;
          if (installPermission === 'wait' && permissionTimeoutS !== undefined) {
            job.permissionDeadline = Math.max(Date.now(), job.installAt ?? 0) + permissionTimeoutS * 1000;
          }
          await this.enter(a, 'awaiting', job.signature ? 'SignatureVerified' : undefined);
          if (job.installAt !== undefined && job.installAt > Date.now()) {
            log.info({ installAt: iso(job.installAt) }, 'installation scheduled');
            this.publish(a, 'InstallScheduled');
          }
          break;
        }

        case 'awaiting': {
          const now = Date.now();
          const timeOk = job.installAt === undefined || job.installAt <= now;
          const allowed = job.permission || this.d.options.installPermission === 'proceed';
          if (timeOk && allowed) {
            await this.enter(a, 'installing', 'Installing');
            break;
          }
          if (!allowed && job.permissionDeadline !== undefined && now >= job.permissionDeadline && timeOk) {
            log.warn('allow_firmware_installation did not arrive in time; giving up');
            return this.finish(a, 'InstallationFailed');
          }
          const next = !timeOk ? job.installAt : job.permissionDeadline;
          await waitUntil(next, signal, a.wake);
          break;
        }

        case 'installing': {
          log.info({ installer: this.d.installer.type }, 'installing');
          let outcome;
          try {
            outcome = await this.d.installer.install(imagePath, {
              signal,
              onProgress: (p) => {
                log.debug({ progress: p }, 'install progress');
                // a status the installer reports itself (script installers print them) is
                // published as it happens; end states come from the outcome below
                if (p.status && INSTALLER_STATUSES.has(p.status as FirmwareUpdateStatusEnum) && a.lastStatus !== p.status) {
                  this.publish(a, p.status as FirmwareUpdateStatusEnum);
                }
              },
            });
          } catch (err) {
            outcome = { result: 'failed' as const, message: String(err) };
          }
          if (outcome.result !== 'reboot-required') await fsp.rm(imagePath, { force: true });
          switch (outcome.result) {
            case 'installed':
              log.info({ message: outcome.message }, 'installed');
              return this.finish(a, 'Installed');
            case 'failed':
              log.warn({ message: outcome.message }, 'installation failed');
              return this.finish(a, 'InstallationFailed');
            case 'verification-failed':
              log.warn({ message: outcome.message }, 'installer rejected the image');
              return this.finish(a, job.requestId === -1 ? 'InstallationFailed' : 'InstallVerificationFailed');
            case 'reboot-required': {
              job.confirmData = outcome.confirmData ?? {};
              await this.enter(a, 'rebooting', undefined);
              await fsp.rm(imagePath, { force: true });
              await this.d.bootReason.record('FirmwareUpdate');
              if (a.lastStatus !== 'InstallRebooting') this.publish(a, 'InstallRebooting');
              if (this.stopping) {
                log.warn('installed; shutting down instead of rebooting, the new firmware is confirmed after the next boot');
                return;
              }
              log.info('installed; rebooting into the new firmware');
              try {
                await this.d.power.reboot();
              } catch (err) {
                log.error({ err: String(err) }, 'reboot failed; the new firmware is confirmed after the next boot');
              }
              return;
            }
          }
          return;
        }

        case 'rebooting':
          // still waiting for the reboot that activates the new firmware
          return;

        case 'confirming': {
          let result: 'installed' | 'failed' | 'verification-failed';
          try {
            const out = await this.d.installer.confirm(job.confirmData ?? {});
            result = out.result;
            log.info({ result, message: out.message }, 'confirmed the new firmware after the reboot');
          } catch (err) {
            log.error({ err: String(err) }, 'confirming the new firmware failed');
            result = 'failed';
          }
          return this.finish(
            a,
            result === 'installed'
              ? 'Installed'
              : result === 'verification-failed' && job.requestId !== -1
                ? 'InstallVerificationFailed'
                : 'InstallationFailed',
          );
        }

        case 'finished':
          return this.finish(a, job.final ?? 'InstallationFailed');
      }
    }
  }

  /** Persist the new phase, then publish its status (if any). */
  private async enter(a: Active, phase: Phase, status: FirmwareUpdateStatusEnum | undefined): Promise<void> {
    a.job.phase = phase;
    await this.persist(a.job);
    if (status) this.publish(a, status);
  }

  /** End the update: persist the end status, publish it, then forget the update and its image. */
  private async finish(a: Active, status: FirmwareUpdateStatusEnum): Promise<void> {
    const { job } = a;
    job.phase = 'finished';
    job.final = status;
    await this.persist(job);
    this.publish(a, status, true);
    await this.write(job, () => this.d.state.delete(JOB_KEY));
    await fsp.rm(path.join(this.d.state.dir, job.file), { force: true });
    if (this.active === a) this.active = undefined;
  }

  /** Cleanup when the runner was aborted: a cancelled update loses its image, a stopped one keeps it. */
  private async aborted(a: Active): Promise<void> {
    if (a.ctl.signal.reason === CANCEL) {
      await fsp.rm(path.join(this.d.state.dir, a.job.file), { force: true });
    }
  }

  private publish(a: Active, status: FirmwareUpdateStatusEnum, final = false): void {
    if (this.active !== a || (a.ctl.signal.aborted && !final)) return;
    if (a.job.requestId === -1 && !V16_PLAIN.has(status)) {
      this.d.log.debug({ status }, 'status has no OCPP 1.6 equivalent for request_id -1; not published');
      return;
    }
    a.lastStatus = status;
    this.d.publish(status, a.job.requestId, final);
  }

  private persist(job: Job): Promise<void> {
    return this.write(job, () => this.d.state.set(JOB_KEY, job));
  }

  /** Run a state write in order, and only while `job` is still the current update. */
  private write(job: Job, fn: () => Promise<void>): Promise<void> {
    const next = this.writes.then(async () => {
      if (this.active?.job !== job) return;
      await fn();
    });
    this.writes = next.catch(() => undefined);
    return next;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.entry.then(fn);
    this.entry = next.catch(() => undefined);
    return next;
  }

  private async removeStrayImages(keep: string | undefined): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(this.d.state.dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n.startsWith(IMAGE_PREFIX) && n !== keep) {
        this.d.log.info({ file: n }, 'removing a leftover firmware image');
        await fsp.rm(path.join(this.d.state.dir, n), { force: true });
      }
    }
  }
}

function newJob(req: ValidRequest): Job {
  const now = Date.now();
  return {
    requestId: req.requestId,
    location: req.location,
    attempts: req.attempts,
    retryIntervalS: req.retryIntervalS,
    retrieveAt: req.retrieveAt,
    installAt: req.installAt,
    signature: req.signed?.signature,
    certificate: req.signed?.certificate,
    phase: req.retrieveAt !== undefined && req.retrieveAt > now ? 'download-scheduled' : 'downloading',
    file: `${IMAGE_PREFIX}${randomBytes(8).toString('hex')}.bin`,
    permission: false,
    acceptedAt: new Date(now).toISOString(),
  };
}

const PHASES = new Set<Phase>([
  'download-scheduled', 'downloading', 'verifying', 'awaiting', 'installing', 'rebooting', 'confirming', 'finished',
]);

function isJob(v: unknown): v is Job {
  const j = v as Partial<Job> | null;
  return (
    typeof j === 'object' && j !== null &&
    typeof j.requestId === 'number' && typeof j.location === 'string' &&
    typeof j.phase === 'string' && PHASES.has(j.phase) &&
    typeof j.file === 'string' && j.file.startsWith(IMAGE_PREFIX) && !j.file.includes('/') &&
    typeof j.attempts === 'number' && typeof j.retryIntervalS === 'number'
  );
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}
