/**
 * system-time: answers `set_system_time` (the CSMS time from BootNotification and Heartbeat
 * responses) by setting the clock through the clock adapter.
 *
 * Replies true when the clock was set, or when setting was not needed: the change is below
 * `minStepS` (so each Heartbeat does not step the clock), or NTP keeps the clock synchronised and
 * `skipWhenNtpSynchronized` is on. Replies false, leaving the clock alone, for anything that is
 * not an RFC 3339 time, a time before `notBefore` or more than `maxAheadS` ahead, and when the
 * adapter failed.
 */
import { inject, injectable } from 'tsyringe';
import { API_VERSION, TOKENS, type ClockAdapter, type Handlers, type Plugin, type PluginContext, type RequestControl } from '../../core/api.js';
import { parseRfc3339 } from './rfc3339.js';

const TWENTY_YEARS_S = 20 * 365.25 * 86_400;

@injectable()
export default class SystemTimePlugin implements Plugin {
  static readonly pluginName = 'system-time';
  static readonly apiVersion = API_VERSION;
  static readonly operations = ['set_system_time'] as const;
  static readonly adapters = ['clock'] as const;
  static readonly optionsSchema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      notBefore: {
        type: 'string',
        minLength: 1,
        default: '2025-01-01T00:00:00Z',
        description: 'refuse times before this (a CSMS with a broken clock must not set 1970)',
      },
      maxAheadS: {
        type: 'number',
        exclusiveMinimum: 0,
        default: TWENTY_YEARS_S,
        description: 'refuse times more than this many seconds ahead of the current clock',
      },
      minStepS: {
        type: 'number',
        minimum: 0,
        default: 2,
        description: 'leave the clock alone (reply true) when it is off by less than this',
      },
      skipWhenNtpSynchronized: {
        type: 'boolean',
        default: false,
        description: 'reply true without setting when the clock adapter reports NTP as synchronised',
      },
    },
  };

  readonly #ctx: PluginContext;
  readonly #clock: ClockAdapter;
  readonly #notBefore: Date;
  readonly #maxAheadMs: number;
  readonly #minStepMs: number;
  readonly #skipWhenNtp: boolean;
  /** one request at a time, in order of arrival */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(@inject(TOKENS.Context) ctx: PluginContext, @inject(TOKENS.Clock) clock: ClockAdapter) {
    this.#ctx = ctx;
    this.#clock = clock;
    const o = ctx.options;
    const floor = parseRfc3339(o.notBefore ?? '2025-01-01T00:00:00Z');
    if (!floor) throw new Error(`system-time: option notBefore is not an RFC 3339 time: ${JSON.stringify(o.notBefore)}`);
    this.#notBefore = floor;
    this.#maxAheadMs = (typeof o.maxAheadS === 'number' && o.maxAheadS > 0 ? o.maxAheadS : TWENTY_YEARS_S) * 1000;
    this.#minStepMs = (typeof o.minStepS === 'number' && o.minStepS >= 0 ? o.minStepS : 2) * 1000;
    this.#skipWhenNtp = o.skipWhenNtpSynchronized === true;
  }

  handlers(): Handlers {
    return { set_system_time: (time, meta) => this.setSystemTime(time, meta) };
  }

  /**
   * Sets the clock, one request at a time. A malformed time is refused at once. A request that
   * waited behind others for longer than minStepS is applied as the CSMS's time plus the wait,
   * and none is applied once the core has sent its safe reply (false) for it.
   */
  setSystemTime(text: unknown, meta?: RequestControl): boolean | Promise<boolean> {
    const arrived = performance.now();
    const time = parseRfc3339(text);
    if (!time) {
      this.#ctx.log.warn({ time: text }, `set_system_time refused: not an RFC 3339 date-time: ${JSON.stringify(text)?.slice(0, 80)}`);
      return false;
    }
    const run = this.#queue.then(() => this.#set(text as string, time, arrived, meta));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #set(text: string, received: Date, arrived: number, meta?: RequestControl): Promise<boolean> {
    const log = this.#ctx.log;
    if (meta?.signal.aborted) {
      log.warn({ time: text }, 'set_system_time: its turn came after the safe reply (false) was sent; clock left alone');
      return false;
    }
    // The CSMS's time was current when the request arrived. A wait behind other requests longer
    // than minStepS (what this plugin treats as worth stepping the clock for) is added to it;
    // a shorter one is within that tolerance and the time is applied as given.
    const sinceArrival = () => {
      const waited = performance.now() - arrived;
      return waited > this.#minStepMs ? waited : 0;
    };
    let time = new Date(received.getTime() + sinceArrival());
    if (time < this.#notBefore) {
      log.warn({ time: text, notBefore: this.#notBefore.toISOString() }, `set_system_time refused: ${text} is before ${this.#notBefore.toISOString()}`);
      return false;
    }
    const now = this.#now();
    if (time.getTime() - now.getTime() > this.#maxAheadMs) {
      log.warn({ time: text, now: now.toISOString(), maxAheadS: this.#maxAheadMs / 1000 }, `set_system_time refused: ${text} is too far ahead`);
      return false;
    }
    const stepMs = time.getTime() - now.getTime();
    if (Math.abs(stepMs) < this.#minStepMs) {
      log.debug({ time: text, stepMs }, 'set_system_time: clock already within minStepS; left alone');
      return true;
    }
    if (this.#skipWhenNtp && this.#clock.ntpSynchronized) {
      let synced: boolean | undefined;
      try {
        synced = await this.#clock.ntpSynchronized();
      } catch (err) {
        log.warn({ err: errorText(err) }, 'cannot read the NTP state; setting the clock');
      }
      if (synced === true) {
        log.info({ time: text, stepMs }, 'set_system_time: NTP keeps the clock synchronised; left alone');
        return true;
      }
    }
    if (meta && !meta.commit()) {
      log.warn({ time: text }, 'set_system_time: the safe reply (false) was sent meanwhile; clock left alone');
      return false;
    }
    time = new Date(received.getTime() + sinceArrival());
    try {
      await this.#clock.setTime(time);
    } catch (err) {
      log.error({ err: errorText(err), time: text }, `set_system_time failed: ${errorText(err)}`);
      return false;
    }
    log.info({ time: time.toISOString(), stepS: Math.round(stepMs / 100) / 10 }, `system clock set to ${time.toISOString()} (stepped ${(stepMs / 1000).toFixed(1)} s)`);
    return true;
  }

  #now(): Date {
    try {
      const now = this.#clock.now?.();
      if (now instanceof Date && !Number.isNaN(now.getTime())) return now;
    } catch {
      /* fall back to the process clock */
    }
    return new Date();
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
