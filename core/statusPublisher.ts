/**
 * Delivery of m2e status variables to EVerest. EVerest subscribes with QoS 0 and may be
 * away (not started, restarting): a status produced then would be lost. So the latest status
 * of each topic is kept (and persisted while undelivered) and sent, in order, once both the
 * broker connection and EVerest are there; after an EVerest restart the latest status of each
 * running (non-final) operation is sent again.
 */
import type { EverestLink, Logger, StateStore, StatusMap, StatusOptions, StatusTopic } from './api.js';
import { systemApiSchemas } from './schemas.js';
import type { Topics } from './topics.js';
import type { MqttTransport } from './transport.js';

interface Entry {
  topic: StatusTopic;
  value: unknown;
  final: boolean;
  delivered: boolean;
  seq: number;
}

const STATE_KEY = 'pending-statuses';

export class StatusPublisher {
  readonly #transport: MqttTransport;
  readonly #topics: Topics;
  readonly #everest: EverestLink;
  readonly #log: Logger;
  readonly #state: StateStore;
  /** latest entry per topic */
  readonly #latest = new Map<StatusTopic, Entry>();
  /** undelivered entries in order (a topic can have several: every state change matters) */
  #queue: Entry[] = [];
  #seq = 0;
  #flushing: Promise<void> = Promise.resolve();
  #persisting: Promise<void> = Promise.resolve();

  constructor(transport: MqttTransport, topics: Topics, everest: EverestLink, state: StateStore, log: Logger) {
    this.#transport = transport;
    this.#topics = topics;
    this.#everest = everest;
    this.#state = state;
    this.#log = log;
    transport.on('connect', () => this.flush());
    everest.on('back', () => this.flush());
    everest.on('restart', () => this.#resendRunning());
  }

  /** Restores statuses that a previous run could not deliver. */
  async restore(): Promise<void> {
    const pending = (await this.#state.get<Array<Pick<Entry, 'topic' | 'value' | 'final'>>>(STATE_KEY)) ?? [];
    for (const p of Array.isArray(pending) ? pending : []) {
      if (systemApiSchemas().status(p.topic, p.value)) continue;
      const entry: Entry = { topic: p.topic, value: p.value, final: true, delivered: false, seq: ++this.#seq };
      this.#queue.push(entry);
      if (!this.#latest.has(p.topic)) this.#latest.set(p.topic, entry);
    }
    if (this.#queue.length) this.#log.info({ count: this.#queue.length }, 'restored undelivered statuses');
  }

  get canDeliver(): boolean {
    return this.#transport.connected && this.#everest.state !== 'lost';
  }

  publish<K extends StatusTopic>(topic: K, value: StatusMap[K], options: StatusOptions = {}, source?: string): void {
    const invalid = systemApiSchemas().status(topic, value);
    if (invalid) {
      this.#log.error({ topic, value, reason: invalid, plugin: source }, 'dropping invalid status (EVerest would reject it)');
      return;
    }
    const entry: Entry = { topic, value, final: options.final ?? false, delivered: false, seq: ++this.#seq };
    this.#latest.set(topic, entry);
    this.#queue.push(entry);
    this.#log.info({ topic, ...(value as object), plugin: source }, 'status');
    this.flush();
  }

  /** Sends undelivered statuses in order while delivery is possible. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      while (this.#queue.length && this.canDeliver) {
        const entry = this.#queue[0]!;
        const ok = await this.#transport.publish(this.#topics.m2e(entry.topic), JSON.stringify(entry.value));
        if (!ok) break;
        entry.delivered = true;
        this.#queue.shift();
      }
      this.#persist();
    });
    return this.#flushing;
  }

  #resendRunning(): void {
    const running = [...this.#latest.values()]
      .filter((e) => !e.final && e.delivered && !this.#queue.includes(e))
      .sort((a, b) => a.seq - b.seq);
    for (const entry of running) {
      entry.delivered = false;
      this.#queue.push(entry);
    }
    this.#queue.sort((a, b) => a.seq - b.seq);
    if (running.length) this.#log.info({ count: running.length }, 'EVerest restarted; re-sending the latest status of running operations');
    void this.flush();
  }

  #persist(): void {
    const pending = this.#queue.map(({ topic, value, final }) => ({ topic, value, final }));
    this.#persisting = this.#persisting
      .then(() => (pending.length ? this.#state.set(STATE_KEY, pending) : this.#state.delete(STATE_KEY)))
      .catch((err) => this.#log.error({ error: (err as Error).message }, 'cannot persist pending statuses'));
  }

  /** Waits for queued sends and persistence to finish. */
  async settle(): Promise<void> {
    await this.#flushing;
    this.#persist();
    await this.#persisting;
  }
}
