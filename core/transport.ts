/**
 * The one MQTT connection (mqtt.js), with reconnect. Only this file touches mqtt.js.
 * QoS 0 and no retain, as EVerest uses on its external topics; nothing is queued inside
 * mqtt.js while offline (the status publisher decides what to re-send).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from './api.js';
import type { Config } from './config.js';

const PUBLISH_TIMEOUT_MS = 2000;
const PUBLISH_OPTIONS = { qos: 0, retain: false } as const;

export interface TransportEvents {
  connect: [];
  offline: [];
  message: [topic: string, payload: Buffer];
}

export class MqttTransport extends EventEmitter<TransportEvents> {
  readonly #log: Logger;
  readonly #url: string;
  readonly #options: IClientOptions;
  #client: MqttClient | undefined;
  #connected = false;
  /** publishes waiting for their completion callback */
  readonly #pending = new Map<number, { at: number; fail: () => void }>();
  #publishSeq = 0;
  #watchdog: NodeJS.Timeout | undefined;
  #firstConnect: Promise<void>;
  #resolveFirst!: () => void;

  constructor(mqttConfig: Config['mqtt'], moduleId: string, log: Logger, url = mqttConfig.url) {
    super();
    this.#log = log;
    this.#url = url;
    this.#firstConnect = new Promise((resolve) => (this.#resolveFirst = resolve));
    const tls = mqttConfig.tls;
    this.#options = {
      clientId: mqttConfig.clientId ?? `everest-system-${moduleId}-${Math.random().toString(16).slice(2, 10)}`,
      username: mqttConfig.username,
      password: mqttConfig.password,
      keepalive: mqttConfig.keepaliveS,
      reconnectPeriod: mqttConfig.reconnectPeriodMs,
      connectTimeout: 10_000,
      clean: true,
      resubscribe: false,
      queueQoSZero: false,
      // mqtt.js traces each packet through the debug module, a dozen calls per message even when
      // nothing is printed; they are only wanted when asked for with DEBUG=mqttjs*
      ...(process.env.DEBUG?.includes('mqttjs') ? {} : { log: () => undefined }),
      ...(tls
        ? {
            ca: tls.ca ? readFileSync(tls.ca) : undefined,
            cert: tls.cert ? readFileSync(tls.cert) : undefined,
            key: tls.key ? readFileSync(tls.key) : undefined,
            rejectUnauthorized: tls.rejectUnauthorized,
          }
        : {}),
    };
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** resolves on the first successful connection */
  get firstConnect(): Promise<void> {
    return this.#firstConnect;
  }

  start(): void {
    if (this.#client) return;
    const redacted = this.#url.replace(/\/\/[^@/]*@/, '//***@');
    this.#log.info({ url: redacted }, 'connecting to MQTT broker');
    const client = mqtt.connect(this.#url, this.#options);
    this.#client = client;
    client.on('connect', () => {
      this.#connected = true;
      this.#log.info({ url: redacted }, 'connected to MQTT broker');
      this.#resolveFirst();
      this.emit('connect');
    });
    client.on('close', () => {
      if (this.#connected) {
        this.#connected = false;
        this.#log.warn('MQTT connection lost; reconnecting');
        this.emit('offline');
      }
    });
    client.on('error', (err) => {
      this.#log.warn({ error: err.message }, 'MQTT error');
    });
    client.on('message', (topic, payload) => this.emit('message', topic, payload));
  }

  async subscribe(filter: string): Promise<void> {
    const client = this.#client;
    if (!client || !this.#connected) return;
    await client.subscribeAsync(filter, { qos: 0 });
  }

  /** Publishes with QoS 0; resolves false when not connected or the write failed. Never rejects. */
  publish(topic: string, payload: string): Promise<boolean> {
    const client = this.#client;
    if (!client || !this.#connected) return Promise.resolve(false);
    if (/[+#\u0000]/.test(topic)) {
      this.#log.error({ topic }, 'refusing to publish to a topic with wildcards');
      return Promise.resolve(false);
    }
    // a QoS 0 publish issued as the connection drops may never call back: never wait for
    // it longer than this, or shutdown and status delivery would hang behind it
    return new Promise<boolean>((resolve) => {
      const id = ++this.#publishSeq;
      const failed = (error: string) => {
        this.#log.warn({ topic, error }, 'publish failed');
        resolve(false);
      };
      this.#pending.set(id, { at: Date.now(), fail: () => failed(`no completion within ${PUBLISH_TIMEOUT_MS} ms`) });
      this.#watchPending();
      try {
        client.publish(topic, payload, PUBLISH_OPTIONS, (err) => {
          this.#pending.delete(id);
          if (err) failed(err.message);
          else resolve(true);
        });
      } catch (err) {
        this.#pending.delete(id);
        failed((err as Error).message);
      }
    });
  }

  /**
   * One timer for all publishes waiting for their completion (not one per publish: a reply is
   * on the request path), running while any are pending and stopped one period after the last.
   */
  #watchPending(): void {
    if (this.#watchdog) return;
    let idle = false;
    this.#watchdog = setInterval(() => {
      const now = Date.now();
      for (const [id, p] of this.#pending) {
        if (now - p.at < PUBLISH_TIMEOUT_MS) continue;
        this.#pending.delete(id);
        p.fail();
      }
      if (this.#pending.size) idle = false;
      else if (idle) {
        clearInterval(this.#watchdog);
        this.#watchdog = undefined;
      } else idle = true;
    }, PUBLISH_TIMEOUT_MS / 4);
    this.#watchdog.unref();
  }

  /**
   * Disconnects: gracefully (pending writes flushed, DISCONNECT sent) when connected, at most
   * `graceMs`; at once when the broker is away, where a graceful end would wait for a
   * reconnect that may never come.
   */
  async stop(graceMs = 1000): Promise<void> {
    const client = this.#client;
    const wasConnected = this.#connected;
    this.#client = undefined;
    this.#connected = false;
    if (!client) return;
    if (!wasConnected) {
      await client.endAsync(true).catch(() => undefined);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const graceful = client.endAsync(false).then(
      () => true,
      () => false,
    );
    const inTime = await Promise.race([graceful, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)))]);
    clearTimeout(timer);
    if (!inTime) await client.endAsync(true).catch(() => undefined);
  }
}
