/**
 * A small hand-made PluginContext for unit tests of plugin logic (the end-to-end tests run the
 * real kernel through mosquitto). State lives in memory; everything a plugin logs is kept.
 */
import { EventEmitter } from 'node:events';
import type {
  BootReason, BootReasonRecord, BootReasonStore, EverestEvents, EverestLink, EverestState, PluginContext,
  ResetType, ResetVetoes, StateStore,
} from '../../core/api.js';
import { captureLogger, type LogLine } from '../adapters/power/stub.js';

export class MemoryState implements StateStore {
  readonly dir = '/nonexistent';
  readonly data = new Map<string, unknown>();
  async get<T>(key: string): Promise<T | undefined> {
    return structuredClone(this.data.get(key)) as T | undefined;
  }
  async set(key: string, value: unknown): Promise<void> {
    this.data.set(key, structuredClone(value));
  }
  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }
  async keys(): Promise<string[]> {
    return [...this.data.keys()];
  }
}

export class FakeBootReason implements BootReasonStore {
  record_: BootReasonRecord | undefined;
  async record(reason: BootReason): Promise<void> {
    if (this.record_?.reason === 'FirmwareUpdate' && reason !== 'FirmwareUpdate') return;
    // distinct `at` per record even within one millisecond
    this.record_ = { reason, at: `${new Date().toISOString()}#${Math.random()}` };
  }
  async peek() {
    return this.record_;
  }
  async consume() {
    const r = this.record_;
    this.record_ = undefined;
    return r;
  }
}

export class FakeVetoes implements ResetVetoes {
  readonly vetoes = new Map<string, (type: ResetType) => string | undefined>();
  register(owner: string, veto: (type: ResetType) => string | undefined) {
    this.vetoes.set(owner, veto);
    return () => void this.vetoes.delete(owner);
  }
  check(type: ResetType): string[] {
    return [...this.vetoes].flatMap(([owner, v]) => {
      const r = v(type);
      return r ? [`${owner}: ${r}`] : [];
    });
  }
}

export class FakeEverest implements EverestLink {
  state: EverestState = 'alive';
  restarts = 0;
  readonly #em = new EventEmitter();
  on<E extends keyof EverestEvents>(event: E, listener: (...args: EverestEvents[E]) => void) {
    this.#em.on(event, listener as (...a: unknown[]) => void);
  }
  off<E extends keyof EverestEvents>(event: E, listener: (...args: EverestEvents[E]) => void) {
    this.#em.off(event, listener as (...a: unknown[]) => void);
  }
  restart() {
    this.restarts += 1;
    this.#em.emit('restart', { previous: 10n, current: 0n });
  }
}

export interface FakeContext extends PluginContext {
  lines: LogLine[];
  state: MemoryState;
  everest: FakeEverest;
  resetVetoes: FakeVetoes;
  bootReason: FakeBootReason;
}

export function fakeContext(name: string, options: Record<string, unknown> = {}, parts: Partial<FakeContext> = {}): FakeContext {
  const lines: LogLine[] = [];
  return {
    name,
    lines,
    log: captureLogger(lines, { plugin: name }),
    options,
    state: parts.state ?? new MemoryState(),
    publish: () => undefined,
    everest: parts.everest ?? new FakeEverest(),
    resetVetoes: parts.resetVetoes ?? new FakeVetoes(),
    bootReason: parts.bootReason ?? new FakeBootReason(),
    env: process.env,
    moduleId: 'system_api',
    stateDir: '/nonexistent',
  };
}

/** Defaults as the kernel applies them from the plugin's optionsSchema. */
export function withDefaults(schema: { properties?: Record<string, { default?: unknown }> }, options: Record<string, unknown> = {}) {
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(schema.properties ?? {})) if (p.default !== undefined) out[k] = p.default;
  return { ...out, ...options };
}
