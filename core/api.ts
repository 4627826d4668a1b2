/**
 * The public, typed API of everest-system-client.
 *
 * Built-in plugins and adapters use exactly this surface, and so do third-party
 * ones loaded by path or package name from `plugins.config.json`. Everything
 * here is types, tokens and small helpers; the host classes stay internal.
 */
import type { InstallerAdapter } from '../adapters/installer/types.js';
import type { PowerAdapter } from '../adapters/power/types.js';
import type { ClockAdapter } from '../adapters/clock/types.js';
import type { LogSource } from '../adapters/log-source/types.js';

export type { InstallerAdapter, InstallOutcome, InstallProgress, ConfirmOutcome } from '../adapters/installer/types.js';
export type { PowerAdapter } from '../adapters/power/types.js';
export type { ClockAdapter } from '../adapters/clock/types.js';
export type { LogSource, LogWindow, LogSink } from '../adapters/log-source/types.js';

/** Major version of this API. A plugin declares the major it was written for in `apiVersion`. */
export const API_VERSION = 1;

// ---------------------------------------------------------------------------
// system_API payload types (spec/system_API.yaml, components.schemas)
// ---------------------------------------------------------------------------

export const BOOT_REASONS = [
  'ApplicationReset', 'FirmwareUpdate', 'LocalReset', 'PowerUp', 'RemoteReset',
  'ScheduledReset', 'Triggered', 'Unknown', 'Watchdog',
] as const;
export type BootReason = (typeof BOOT_REASONS)[number];

export const FIRMWARE_UPDATE_STATUSES = [
  'Downloaded', 'DownloadFailed', 'Downloading', 'DownloadScheduled', 'DownloadPaused', 'Idle',
  'InstallationFailed', 'Installing', 'Installed', 'InstallRebooting', 'InstallScheduled',
  'InstallVerificationFailed', 'InvalidSignature', 'SignatureVerified',
] as const;
export type FirmwareUpdateStatusEnum = (typeof FIRMWARE_UPDATE_STATUSES)[number];

export const LOG_STATUSES = [
  'AcceptedCanceled', 'BadMessage', 'Idle', 'NotSupportedOperation', 'PermissionDenied',
  'Uploaded', 'UploadFailure', 'Uploading',
] as const;
export type LogStatusEnum = (typeof LOG_STATUSES)[number];

export type ResetType = 'Soft' | 'Hard' | 'NotSpecified';
export type UpdateFirmwareResponse =
  | 'Accepted' | 'Rejected' | 'AcceptedCanceled' | 'InvalidCertificate' | 'RevokedCertificate';
export type UploadLogsStatus = 'Accepted' | 'Rejected' | 'AcceptedCanceled';

export interface FirmwareUpdateRequest {
  location: string;
  request_id: number;
  retries?: number;
  retry_interval_s?: number;
  retrieve_timestamp?: string;
  install_timestamp?: string;
  signing_certificate?: string;
  signature?: string;
}

export interface UploadLogsRequest {
  location: string;
  request_id?: number;
  retries?: number;
  retry_interval_s?: number;
  oldest_timestamp?: string;
  latest_timestamp?: string;
  type?: string;
}

export interface UploadLogsResponse {
  upload_logs_status: UploadLogsStatus;
  file_name?: string;
}

export interface ResetRequest {
  type?: ResetType;
  scheduled?: boolean;
}

export interface FirmwareUpdateStatus {
  firmware_update_status: FirmwareUpdateStatusEnum;
  request_id: number;
}

export interface LogStatus {
  log_status: LogStatusEnum;
  request_id: number;
}

// ---------------------------------------------------------------------------
// Operations: what EVerest asks, and what the answer is
// ---------------------------------------------------------------------------

/** Every e2m operation a plugin can handle, with its payload and reply types. */
export interface OperationMap {
  update_firmware: { payload: FirmwareUpdateRequest; reply: UpdateFirmwareResponse };
  upload_logs: { payload: UploadLogsRequest; reply: UploadLogsResponse };
  is_reset_allowed: { payload: ResetType; reply: boolean };
  set_system_time: { payload: string; reply: boolean };
  get_boot_reason: { payload: undefined; reply: BootReason };
  /** fire-and-forget, zero-byte payload */
  allow_firmware_installation: { payload: undefined; reply: void };
  /** fire-and-forget, no envelope */
  reset: { payload: ResetRequest; reply: void };
}
export type Operation = keyof OperationMap;

/** Operations that EVerest sends as request/reply (with `headers.replyTo`). */
export const REQUEST_OPERATIONS = [
  'update_firmware', 'upload_logs', 'is_reset_allowed', 'set_system_time', 'get_boot_reason',
] as const satisfies readonly Operation[];
/** Operations that EVerest sends without expecting a reply. */
export const COMMAND_OPERATIONS = ['allow_firmware_installation', 'reset'] as const satisfies readonly Operation[];
export const OPERATIONS: readonly Operation[] = [...REQUEST_OPERATIONS, ...COMMAND_OPERATIONS];

/** The reply EVerest itself falls back to when nobody answers: our safe reply for bad input. */
export const SAFE_REPLIES = {
  update_firmware: 'Rejected',
  upload_logs: { upload_logs_status: 'Rejected' },
  is_reset_allowed: false,
  set_system_time: false,
  get_boot_reason: 'Unknown',
} as const satisfies { [K in (typeof REQUEST_OPERATIONS)[number]]: OperationMap[K]['reply'] };

export interface RequestMeta {
  /** full topic the request arrived on */
  topic: string;
  /** reply topic on the wire (external prefix included), or undefined when none was given */
  replyTo?: string;
  /** when the message arrived */
  receivedAt: Date;
  /**
   * Aborted when the core gave up waiting (requestTimeoutMs) and sent the safe reply for this
   * request: the handler's answer will be dropped, so it should not start anything.
   */
  signal: AbortSignal;
  /**
   * Call right before the first lasting side effect (starting an update, setting the clock,
   * consuming a record). false: the safe reply was already sent, so do nothing and return.
   * true: the core now waits for this handler's answer instead of sending the safe reply at the
   * timeout (committedTimeoutMs longer at most; keep the work between commit and answer short). A handler that answers synchronously, or only
   * reads, need not call it. For commands it always returns true.
   */
  commit(): boolean;
}

/** The part of RequestMeta that work done for a request needs: its abort signal and commit(). */
export type RequestControl = Pick<RequestMeta, 'commit' | 'signal'>;

export type Handler<K extends Operation> = (
  payload: OperationMap[K]['payload'],
  meta: RequestMeta,
) => OperationMap[K]['reply'] | Promise<OperationMap[K]['reply']>;

export type Handlers = { [K in Operation]?: Handler<K> };

/** Variables the daemon publishes to EVerest (m2e). */
export interface StatusMap {
  firmware_update_status: FirmwareUpdateStatus;
  log_status: LogStatus;
}
export type StatusTopic = keyof StatusMap;

// ---------------------------------------------------------------------------
// Services the core hands to plugins
// ---------------------------------------------------------------------------

/** pino-compatible logger subset. */
export interface Logger {
  trace(obj: unknown, msg?: string): void;
  debug(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
  fatal(obj: unknown, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Persistent JSON documents, scoped to one plugin. Writes are atomic (temp file,
 * fsync, rename, fsync of the directory) and files are mode 0600. A file that
 * cannot be parsed is moved aside as `<key>.json.corrupt-<time>`, logged, and
 * read as absent. The store is the only writer of its documents: what it read or
 * wrote is answered from memory (a fresh copy each time), so do not edit them by
 * other means while the daemon runs.
 */
export interface StateStore {
  /** the directory this store writes to; plugins may keep large files (downloads) here */
  readonly dir: string;
  /** the latest value set, even if its write is still on its way to the disk */
  get<T>(key: string): Promise<T | undefined>;
  /**
   * Resolves once this value, or a newer one of the same key, is on disk: a write that a newer
   * one replaces before it starts is skipped.
   */
  set(key: string, value: unknown): Promise<void>;
  /** like set: resolves once the document is gone, or a newer value of it is on disk */
  delete(key: string): Promise<void>;
  keys(): Promise<string[]>;
}

export interface StatusOptions {
  /**
   * True when this status ends the operation (Installed, DownloadFailed, Uploaded, ...).
   * A non-final status is re-sent after EVerest restarts; a final one only if EVerest missed it.
   */
  final?: boolean;
}

/** State of the EVerest side as seen from its heartbeat. */
export type EverestState = 'unknown' | 'alive' | 'lost';

export interface EverestEvents {
  /** heartbeat seen again after it had been lost (same EVerest, counter kept counting) */
  back: [];
  /** heartbeat counter went back (EVerest restarted); `previous` is the last counter seen before */
  restart: [{ previous: bigint; current: bigint }];
  /** no heartbeat for the configured timeout */
  lost: [];
}

export interface EverestLink {
  readonly state: EverestState;
  /** number of EVerest restarts seen by this process */
  readonly restarts: number;
  on<E extends keyof EverestEvents>(event: E, listener: (...args: EverestEvents[E]) => void): void;
  off<E extends keyof EverestEvents>(event: E, listener: (...args: EverestEvents[E]) => void): void;
}

/**
 * Reset vetoes: any plugin can refuse resets while it does something that must not be
 * interrupted. A veto function returns a reason (refuse) or undefined (no objection).
 */
export interface ResetVetoes {
  register(owner: string, veto: (type: ResetType) => string | undefined): () => void;
  /** all current objections, `owner: reason` */
  check(type: ResetType): string[];
}

/**
 * The reason the next boot (or the next EVerest start) will report. Persisted by the core so that
 * every plugin records into one place: reset records RemoteReset/ScheduledReset, firmware-update
 * records FirmwareUpdate, boot-reason consumes it.
 */
export interface BootReasonRecord {
  reason: BootReason;
  /** ISO time of recording */
  at: string;
  /** kernel boot id when recorded (/proc/sys/kernel/random/boot_id), if known */
  bootId?: string;
}
export interface BootReasonStore {
  /** record the reason for the coming restart; FirmwareUpdate is never overwritten by another reason */
  record(reason: BootReason): Promise<void>;
  /** the recorded reason, without clearing it */
  peek(): Promise<BootReasonRecord | undefined>;
  /** return and clear the recorded reason */
  consume(): Promise<BootReasonRecord | undefined>;
  /**
   * true when the store knows, without reading its file, that nothing is recorded (it found or
   * handed out none and nothing was recorded since): peek() would resolve to undefined. false or
   * absent: ask peek().
   */
  readonly knownEmpty?: boolean;
}

/** Everything a plugin gets from the host, under the token `TOKENS.Context`. */
export interface PluginContext {
  /** the plugin's name in the config */
  readonly name: string;
  readonly log: Logger;
  /** the plugin's options, validated against its `optionsSchema` (defaults applied) */
  readonly options: Readonly<Record<string, unknown>>;
  /** persistent state of this plugin (under `<stateDir>/plugins/<plugin name>/`) */
  readonly state: StateStore;
  /**
   * Publish a status variable. Validated against the AsyncAPI schema first (an invalid one
   * is logged and dropped); kept and re-sent when EVerest or the broker was away.
   */
  publish<K extends StatusTopic>(topic: K, value: StatusMap[K], options?: StatusOptions): void;
  readonly everest: EverestLink;
  readonly resetVetoes: ResetVetoes;
  readonly bootReason: BootReasonStore;
  /** environment for child processes (PATH etc.); adapters and plugins pass it to execa */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** the moduleId and stateDir of the daemon */
  readonly moduleId: string;
  readonly stateDir: string;
}

/** What a plugin instance provides. */
export interface Plugin {
  /** handlers for exactly the operations the class declares in `static operations` */
  handlers(): Handlers;
  /** called once, in config order, after MQTT is up; may restore persisted work */
  start?(): Promise<void> | void;
  /** called once, in reverse order, on shutdown; persist in-flight work here */
  stop?(): Promise<void> | void;
}

/** Adapter slots a plugin can ask for, and the interface bound to each. */
export interface AdapterSlots {
  installer: InstallerAdapter;
  power: PowerAdapter;
  clock: ClockAdapter;
  logSources: LogSource[];
}
export type AdapterSlot = keyof AdapterSlots;
export const ADAPTER_SLOTS: readonly AdapterSlot[] = ['installer', 'power', 'clock', 'logSources'];

/**
 * A plugin class. Its constructor receives its dependencies through tsyringe:
 * decorate parameters with `@inject(TOKENS.Context)`, `@inject(TOKENS.Installer)`, ...
 * (the class needs `@injectable()`), or, without decorators, list the tokens in the
 * static `inject` array in constructor-parameter order.
 */
export interface PluginClass {
  new (...args: any[]): Plugin;
  /** default name in the config, e.g. "firmware-update" */
  readonly pluginName: string;
  /** API major version the plugin is written for (API_VERSION) */
  readonly apiVersion: number;
  /** the e2m operations this plugin answers; two plugins may not claim the same one */
  readonly operations: readonly Operation[];
  /** adapter slots the plugin needs; a missing binding is a start-up error */
  readonly adapters?: readonly AdapterSlot[];
  /** JSON Schema of the plugin's `options` (defaults are applied) */
  readonly optionsSchema?: Record<string, unknown>;
  /** constructor tokens for plugins written without decorators */
  readonly inject?: readonly InjectionToken[];
}

export type InjectionToken = symbol | string;

/** Injection tokens. Each plugin is resolved in its own child container. */
export const TOKENS = {
  Context: Symbol.for('everest-system:Context'),
  Logger: Symbol.for('everest-system:Logger'),
  Options: Symbol.for('everest-system:Options'),
  State: Symbol.for('everest-system:State'),
  Everest: Symbol.for('everest-system:Everest'),
  ResetVetoes: Symbol.for('everest-system:ResetVetoes'),
  BootReason: Symbol.for('everest-system:BootReason'),
  Installer: Symbol.for('everest-system:Installer'),
  Power: Symbol.for('everest-system:Power'),
  Clock: Symbol.for('everest-system:Clock'),
  LogSources: Symbol.for('everest-system:LogSources'),
} as const;

/** Token under which each adapter slot is registered. */
export const SLOT_TOKENS: { [S in AdapterSlot]: symbol } = {
  installer: TOKENS.Installer,
  power: TOKENS.Power,
  clock: TOKENS.Clock,
  logSources: TOKENS.LogSources,
};

// ---------------------------------------------------------------------------
// Adapters
// ---------------------------------------------------------------------------

/** What an adapter factory gets besides its options. */
export interface AdapterDeps {
  log: Logger;
  /** the daemon's state directory; adapters keep their own files under `<stateDir>/adapters/<type>/` */
  stateDir: string;
  /** environment for child processes */
  env: Readonly<Record<string, string | undefined>>;
}

/**
 * An adapter module's default export. `type` is the name used in `plugins.config.json`
 * (`{"type": "rauc", ...options}`); `optionsSchema` validates the rest of that object.
 */
export interface AdapterModule<S extends AdapterSlot = AdapterSlot> {
  slot: S;
  type: string;
  optionsSchema?: Record<string, unknown>;
  create(
    options: Record<string, unknown>,
    deps: AdapterDeps,
  ): (S extends 'logSources' ? LogSource : AdapterSlots[S]) | Promise<S extends 'logSources' ? LogSource : AdapterSlots[S]>;
}

/** Identity helper that types an adapter module. */
export function defineAdapter<S extends AdapterSlot>(module: AdapterModule<S>): AdapterModule<S> {
  return module;
}
