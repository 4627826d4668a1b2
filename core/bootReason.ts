import { readFileSync } from 'node:fs';
import type { BootReason, BootReasonRecord, BootReasonStore, Logger, StateStore } from './api.js';

const KEY = 'next-boot-reason';

/** The kernel's id of the current boot, or undefined when it cannot be read. */
export function readBootId(file = '/proc/sys/kernel/random/boot_id'): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * One persisted "reason for the coming restart", shared by all plugins. FirmwareUpdate is kept
 * over any other reason recorded after it (the firmware must be reported as the cause).
 */
export class PersistedBootReason implements BootReasonStore {
  readonly #state: StateStore;
  readonly #log: Logger;
  readonly #bootId: () => string | undefined;
  /**
   * true once this process knows nothing is recorded (it consumed or found none, and nothing was
   * recorded since): peek() and consume() then answer without reading the file. Every change to the
   * record goes through this object (one per daemon), which bumps #generation.
   */
  #knownEmpty = false;
  #generation = 0;

  constructor(state: StateStore, log: Logger, bootId: () => string | undefined = () => readBootId()) {
    this.#state = state;
    this.#log = log;
    this.#bootId = bootId;
  }

  get knownEmpty(): boolean {
    return this.#knownEmpty;
  }

  async record(reason: BootReason): Promise<void> {
    const current = await this.#state.get<BootReasonRecord>(KEY);
    if (current?.reason === 'FirmwareUpdate' && reason !== 'FirmwareUpdate') {
      this.#log.info({ kept: current.reason, ignored: reason }, 'boot reason FirmwareUpdate already recorded; kept');
      return;
    }
    const record: BootReasonRecord = { reason, at: new Date().toISOString(), bootId: this.#bootId() };
    this.#generation++;
    this.#knownEmpty = false;
    await this.#state.set(KEY, record);
    this.#log.info({ reason }, 'recorded boot reason for the next start');
  }

  async peek(): Promise<BootReasonRecord | undefined> {
    if (this.#knownEmpty) return undefined;
    const generation = this.#generation;
    const record = await this.#state.get<BootReasonRecord>(KEY);
    if (!record && generation === this.#generation) this.#knownEmpty = true;
    return record;
  }

  async consume(): Promise<BootReasonRecord | undefined> {
    if (this.#knownEmpty) return undefined;
    const generation = this.#generation;
    const record = await this.#state.get<BootReasonRecord>(KEY);
    if (record) await this.#state.delete(KEY);
    if (generation === this.#generation) this.#knownEmpty = true;
    return record;
  }
}
