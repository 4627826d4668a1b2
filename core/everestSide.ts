/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * Plays EVerest's side of the system_API over MQTT, the way EVerest's system_API module does:
 * a fresh uuid reply topic per request (subscribed before the request is published), the
 * external prefix on every wire topic but not inside replyTo, zero-byte
 * allow_firmware_installation, bare JSON reset, a u64 heartbeat counter. Used by the demo,
 * by `everest-system probe` and by the tests.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Operation } from './api.js';
import { Topics } from './topics.js';

export interface EverestSideOptions {
  moduleId?: string;
  prefix?: string;
  mqtt?: IClientOptions;
}

export interface M2eMessage {
  /** name after m2e/ (e.g. firmware_update_status, communication_check, reply/<id>) */
  name: string;
  topic: string;
  raw: Buffer;
  /** parsed JSON, or undefined when not JSON */
  value: unknown;
  at: number;
}

export class EverestSide extends EventEmitter<{ message: [M2eMessage] }> {
  readonly topics: Topics;
  readonly client: MqttClient;
  readonly messages: M2eMessage[] = [];
  #heartbeat: NodeJS.Timeout | undefined;
  #counter = 0n;

  private constructor(client: MqttClient, topics: Topics) {
    super();
    this.client = client;
    this.topics = topics;
    client.on('message', (topic, raw) => {
      const head = `${topics.base}m2e/`;
      if (!topic.startsWith(head)) return;
      let value: unknown;
      try {
        value = raw.length ? JSON.parse(raw.toString()) : undefined;
      } catch {
        value = undefined;
      }
      const msg: M2eMessage = { name: topic.slice(head.length), topic, raw, value, at: Date.now() };
      this.messages.push(msg);
      this.emit('message', msg);
    });
  }

  static async connect(url: string, options: EverestSideOptions = {}): Promise<EverestSide> {
    const topics = new Topics(options.moduleId ?? 'system_api', options.prefix ?? '');
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 500, connectTimeout: 5000, ...options.mqtt });
    const side = new EverestSide(client, topics);
    await client.subscribeAsync(`${topics.base}m2e/#`, { qos: 0 });
    return side;
  }

  /**
   * Wraps a client that is already connected (e.g. one the caller connected with a deadline of its
   * own) and subscribes to this module's m2e topics.
   */
  static async attach(client: MqttClient, options: Omit<EverestSideOptions, 'mqtt'> = {}): Promise<EverestSide> {
    const topics = new Topics(options.moduleId ?? 'system_api', options.prefix ?? '');
    const side = new EverestSide(client, topics);
    await client.subscribeAsync(`${topics.base}m2e/#`, { qos: 0 });
    return side;
  }

  /** Sends a request and resolves with the parsed reply; rejects after timeoutMs. */
  async request<T = unknown>(op: Operation | string, payload?: unknown, options: { timeoutMs?: number; noReplyTo?: boolean; raw?: string | Buffer } = {}): Promise<T> {
    const id = randomUUID();
    const replyTo = `${this.topics.unprefixedBase}m2e/reply/${id}`;
    const wireReply = `${this.topics.prefix}${replyTo}`;
    const envelope: Record<string, unknown> = options.noReplyTo ? {} : { headers: { replyTo } };
    if (payload !== undefined) envelope.payload = payload;
    const body = options.raw ?? JSON.stringify(envelope);
    if (options.noReplyTo) {
      await this.client.publishAsync(this.topics.e2m(op), body, { qos: 0 });
      return undefined as T;
    }
    const reply = this.nextMessage((m) => m.topic === wireReply, options.timeoutMs ?? 5000, `no reply to ${op} within ${options.timeoutMs ?? 5000} ms`);
    await this.client.subscribeAsync(wireReply, { qos: 0 });
    await this.client.publishAsync(this.topics.e2m(op), body, { qos: 0 });
    try {
      return (await reply).value as T;
    } finally {
      await this.client.unsubscribeAsync(wireReply).catch(() => undefined);
    }
  }

  /** Sends a fire-and-forget command; allow_firmware_installation carries zero bytes. */
  async command(op: 'allow_firmware_installation' | 'reset' | string, payload?: unknown): Promise<void> {
    const body = op === 'allow_firmware_installation' && payload === undefined ? '' : typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
    await this.client.publishAsync(this.topics.e2m(op), body as string, { qos: 0 });
  }

  /** Publishes any payload on any e2m name (for malformed-input tests). */
  async publishRaw(name: string, payload: string | Buffer): Promise<void> {
    await this.client.publishAsync(this.topics.e2m(name), payload, { qos: 0 });
  }

  startHeartbeat(intervalMs = 1000, from = 0n): void {
    this.stopHeartbeat();
    this.#counter = from;
    const beat = () => {
      void this.client.publishAsync(this.topics.e2m('heartbeat'), this.#counter.toString(), { qos: 0 }).catch(() => undefined);
      this.#counter = this.#counter === (1n << 64n) - 1n ? 0n : this.#counter + 1n;
    };
    beat();
    this.#heartbeat = setInterval(beat, intervalMs);
  }

  stopHeartbeat(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  /** status values received on m2e/<topic>, in order */
  statuses<T = any>(topic: string): T[] {
    return this.messages.filter((m) => m.name === topic).map((m) => m.value as T);
  }

  /** Resolves with the first message (already received or future) matching the predicate. */
  nextMessage(predicate: (m: M2eMessage) => boolean, timeoutMs = 5000, what = 'message', since = this.messages.length): Promise<M2eMessage> {
    const seen = this.messages.slice(since).find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const onMessage = (m: M2eMessage) => {
        if (!predicate(m)) return;
        clearTimeout(timer);
        this.off('message', onMessage);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.off('message', onMessage);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.on('message', onMessage);
    });
  }

  /** Resolves with the first status on m2e/<topic> (received so far or later) that matches. */
  async waitForStatus<T = any>(topic: string, predicate: (value: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
    const m = await this.nextMessage((x) => x.name === topic && predicate(x.value as T), timeoutMs, `a matching ${topic}`, 0);
    return m.value as T;
  }

  async close(): Promise<void> {
    this.stopHeartbeat();
    await this.client.endAsync(true).catch(() => undefined);
  }
}
