/**
 * The communication check as EVerest's system_API module runs it (everest-core's
 * CommCheckHandler): at start it raises `system/CommunicationFault` with sub type
 * "Initial communication check"; every message on m2e/communication_check clears any active
 * fault, `false` also switches the check off for good; when nothing arrives for `timeoutS`
 * seconds and no fault is active, it raises "Bridge to implementation connection lost".
 * A timeout <= 0 disables the check (no fault at all).
 */
export const FAULT_TYPE = 'system/CommunicationFault';
export const INITIAL_SUB_TYPE = 'Initial communication check';
export const LOST_SUB_TYPE = 'Bridge to implementation connection lost';

export type CommCheckState = 'initial' | 'ok' | 'fault' | 'off' | 'disabled';

export type CommCheckEvent =
  | { kind: 'fault'; action: 'raised' | 'cleared'; subType: string }
  | { kind: 'state'; state: CommCheckState; value?: boolean }
  | { kind: 'invalid'; raw: string }
  | { kind: 'ignored'; value: boolean };

export class CommCheckMonitor {
  #state: CommCheckState;
  #active: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #count = 0;
  #last: number | undefined;
  #ignoredReported = false;
  readonly timeoutMs: number;

  constructor(
    timeoutS: number,
    private readonly emit: (e: CommCheckEvent) => void,
  ) {
    this.timeoutMs = Math.round(timeoutS * 1000);
    this.#state = this.timeoutMs > 0 ? 'initial' : 'disabled';
  }

  get state(): CommCheckState {
    return this.#state;
  }

  /** the fault sub type EVerest would have active now */
  get activeFault(): string | undefined {
    return this.#active;
  }

  /** messages received on m2e/communication_check */
  get count(): number {
    return this.#count;
  }

  /** ms since the last message, or undefined */
  sinceLast(): number | undefined {
    return this.#last === undefined ? undefined : Date.now() - this.#last;
  }

  start(): void {
    if (this.#state !== 'initial') return;
    this.#raise(INITIAL_SUB_TYPE);
    this.#arm();
  }

  /** one message on m2e/communication_check */
  feed(raw: Buffer): void {
    const text = raw.toString().trim();
    // EVerest deserialises the payload as a JSON boolean; anything else is dropped
    if (text !== 'true' && text !== 'false') {
      this.emit({ kind: 'invalid', raw: raw.toString().slice(0, 100) });
      return;
    }
    const value = text === 'true';
    this.#count += 1;
    this.#last = Date.now();
    if (this.#state === 'off' || this.#state === 'disabled') {
      if (this.#state === 'off' && !this.#ignoredReported) this.emit({ kind: 'ignored', value });
      this.#ignoredReported = true;
      return;
    }
    if (this.#active) this.#clear();
    if (!value) {
      this.stop();
      this.#state = 'off';
      this.emit({ kind: 'state', state: 'off', value });
      return;
    }
    if (this.#state !== 'ok') {
      this.#state = 'ok';
      this.emit({ kind: 'state', state: 'ok', value });
    }
    this.#arm();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#expired(), this.timeoutMs);
    this.#timer.unref();
  }

  #expired(): void {
    if (!this.#active) {
      this.#state = 'fault';
      this.#raise(LOST_SUB_TYPE);
    }
    this.#arm();
  }

  #raise(subType: string): void {
    this.#active = subType;
    this.emit({ kind: 'fault', action: 'raised', subType });
  }

  #clear(): void {
    const subType = this.#active!;
    this.#active = undefined;
    this.emit({ kind: 'fault', action: 'cleared', subType });
  }
}
