/**
 * Watches EVerest's e2m/heartbeat: a u64 counter, +1 per interval, restarting from 0 when
 * EVerest restarts and wrapping after 2^64-1. Parsed exactly (BigInt), never through
 * JSON.parse, because values above 2^53 would lose precision.
 */
import { EventEmitter } from 'node:events';
import type { EverestEvents, EverestLink, EverestState, Logger } from './api.js';

export const U64_MAX = (1n << 64n) - 1n;

/** The counter of a heartbeat payload, or undefined when it is not a non-negative JSON integer that fits u64. */
export function parseHeartbeat(payload: Buffer | string): bigint | undefined {
  const text = payload.toString().trim();
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) return undefined;
  const value = BigInt(text);
  return value <= U64_MAX ? value : undefined;
}

export class HeartbeatMonitor implements EverestLink {
  readonly #events = new EventEmitter();
  readonly #log: Logger;
  readonly #timeoutMs: number;
  #state: EverestState = 'unknown';
  #last: bigint | undefined;
  #timer: NodeJS.Timeout | undefined;
  #restarts = 0;

  constructor(timeoutMs: number, log: Logger) {
    this.#timeoutMs = timeoutMs;
    this.#log = log;
  }

  get state(): EverestState {
    return this.#state;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** last counter seen */
  get last(): bigint | undefined {
    return this.#last;
  }

  on<E extends keyof EverestEvents>(event: E, listener: (...args: EverestEvents[E]) => void): void {
    this.#events.on(event, listener as (...args: unknown[]) => void);
  }

  off<E extends keyof EverestEvents>(event: E, listener: (...args: EverestEvents[E]) => void): void {
    this.#events.off(event, listener as (...args: unknown[]) => void);
  }

  #emit<E extends keyof EverestEvents>(event: E, ...args: EverestEvents[E]): void {
    for (const listener of this.#events.listeners(event)) {
      try {
        (listener as (...a: EverestEvents[E]) => void)(...args);
      } catch (err) {
        this.#log.error({ event, error: (err as Error).message }, 'EVerest event listener failed');
      }
    }
  }

  /** Feed one e2m/heartbeat payload. */
  onHeartbeat(payload: Buffer | string): void {
    const value = parseHeartbeat(payload);
    if (value === undefined) {
      this.#log.warn({ payload: payload.toString().slice(0, 64) }, 'ignoring heartbeat that is not a u64 integer');
      return;
    }
    const previous = this.#last;
    const wasLost = this.#state === 'lost';
    this.#last = value;
    this.#arm();
    // a live EVerest never repeats a value: the same value again (0 after 0) is a restart too,
    // e.g. an EVerest that crashed before its second heartbeat
    if (previous !== undefined && value <= previous && !(previous === U64_MAX && value === 0n)) {
      this.#restarts += 1;
      this.#state = 'alive';
      this.#log.info({ previous: previous.toString(), current: value.toString() }, 'EVerest restarted (heartbeat counter went back)');
      this.#emit('restart', { previous, current: value });
      return;
    }
    if (this.#state !== 'alive') {
      this.#state = 'alive';
      this.#log.info({ counter: value.toString() }, wasLost ? 'EVerest heartbeat is back' : 'EVerest heartbeat seen');
      if (wasLost) this.#emit('back');
    }
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#state = 'lost';
      this.#log.warn({ timeoutMs: this.#timeoutMs }, 'EVerest heartbeat lost');
      this.#emit('lost');
    }, this.#timeoutMs);
    this.#timer.unref();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#events.removeAllListeners();
  }
}
