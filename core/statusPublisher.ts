/**
 * Delivery of m2e status variables to EVerest. EVerest subscribes with QoS 0 and may be
 * away (not started, restarting): a status produced then would be lost. So the latest status
 * of each topic is kept (and persisted while undelivered) and sent, in order, once both the
 * broker connection and EVerest are there; after an EVerest restart the latest status of each
 * running (non-final) operation is sent again.
 *
 * "EVerest is there" needs its heartbeat on the current broker connection: after a (re)connect,
 * or after EVerest's heartbeat was lost, EVerest's own connection may come back later than ours,
 * and a status sent before it has subscribed again is lost. The first heartbeat is not enough: a
 * reconnecting client may send it (queued while offline) before its subscriptions are restored,
 * so delivery waits for the second one, a full heartbeat interval later. Without any heartbeat for
 * the heartbeat timeout (EVerest runs with the heartbeat off, or is not up yet) statuses are sent
 * anyway, and the latest one of each topic is sent again once EVerest is heard.
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
  /** sent while no heartbeat had been seen on the connection (EVerest may have missed it) */
  blind?: boolean;
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
  readonly #heartbeatTimeoutMs: number;
  /** EVerest is heard on the current broker connection (its second heartbeat since connect or loss) */
  #heard = false;
  /** heartbeats since connect or loss, until heard */
  #beats = 0;
  /** no heartbeat within the heartbeat timeout after connecting: send without one */
  #graceOver = false;
  #graceTimer: NodeJS.Timeout | undefined;

  constructor(transport: MqttTransport, topics: Topics, everest: EverestLink, state: StateStore, log: Logger, heartbeatTimeoutMs = 3500) {
    this.#transport = transport;
    this.#topics = topics;
    this.#everest = everest;
    this.#state = state;
    this.#log = log;
    this.#heartbeatTimeoutMs = heartbeatTimeoutMs;
    transport.on('connect', () => this.#onConnect());
    transport.on('offline', () => {
      this.#heard = false;
      this.#beats = 0;
      this.#graceOver = false;
      clearTimeout(this.#graceTimer);
    });
    everest.on('lost', () => {
      this.#heard = false;
      this.#beats = 0;
    });
    everest.on('restart', () => this.#resendRunning());
  }

  #onConnect(): void {
    this.#heard = false;
    this.#beats = 0;
    this.#graceOver = false;
    clearTimeout(this.#graceTimer);
  }

  /**
   * The daemon listens on e2m/+ on this connection: from now on EVerest's heartbeat can be heard,
   * so the wait for it starts here, not at connect (plugins may take long to start in between).
   */
  listening(): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(() => {
      this.#graceOver = true;
      if (this.#queue.length) this.#log.info({ count: this.#queue.length }, 'no EVerest heartbeat since connecting; sending statuses anyway');
      void this.flush();
    }, this.#heartbeatTimeoutMs);
    this.#graceTimer.unref();
  }

  /** Called for every valid e2m/heartbeat; the second one says EVerest is on the broker and subscribed. */
  onHeartbeat(): void {
    if (this.#heard) return;
    this.#beats += 1;
    if (this.#beats < 2) return;
    this.#heard = true;
    // what was sent before EVerest was known to be there: the latest of each topic again
    const blind = [...this.#latest.values()].filter((e) => e.blind && e.delivered && !this.#queue.includes(e));
    for (const entry of blind) {
      entry.delivered = false;
      this.#queue.push(entry);
    }
    this.#queue.sort((a, b) => a.seq - b.seq);
    void this.flush();
  }

  /** Restores statuses that a previous run could not deliver. */
  async restore(): Promise<void> {
    const pending = (await this.#state.get<Array<Pick<Entry, 'topic' | 'value' | 'final'>>>(STATE_KEY)) ?? [];
    for (const p of Array.isArray(pending) ? pending : []) {
      if (systemApiSchemas().status(p.topic, p.value)) continue;
      const entry: Entry = { topic: p.topic, value: p.value, final: true, delivered: false, seq: ++this.#seq };
      this.#queue.push(entry);
      this.#latest.set(p.topic, entry);
    }
    if (this.#queue.length) this.#log.info({ count: this.#queue.length }, 'restored undelivered statuses');
  }

  get canDeliver(): boolean {
    return this.#transport.connected && this.#everest.state !== 'lost' && (this.#heard || this.#graceOver);
  }

  publish<K extends StatusTopic>(topic: K, value: StatusMap[K], options: StatusOptions = {}, source?: string): void {
    const invalid = systemApiSchemas().status(topic, value);
    if (invalid) {
      this.#log.error({ topic, value, reason: invalid, plugin: source }, 'dropping invalid status (EVerest would reject it)');
      return;
    }
    this.#log.info({ topic, ...(value as object), plugin: source }, 'status');
    // the same status again while the previous one of this topic is still undelivered (typically a
    // status restored from the last run that a plugin reports again on start): EVerest gets it once
    const pending = this.#latest.get(topic);
    if (pending && !pending.delivered && this.#queue.includes(pending) && JSON.stringify(pending.value) === JSON.stringify(value)) {
      pending.final = options.final ?? false;
      this.flush();
      return;
    }
    const entry: Entry = { topic, value, final: options.final ?? false, delivered: false, seq: ++this.#seq };
    this.#latest.set(topic, entry);
    this.#queue.push(entry);
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
        entry.blind = !this.#heard;
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
    clearTimeout(this.#graceTimer);
    await this.#flushing;
    this.#persist();
    await this.#persisting;
  }
}
