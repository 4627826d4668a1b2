/**
 * The daemon: owns the MQTT transport, topic conventions, heartbeat monitor, communication
 * check, status delivery, state, and the plugins' lifecycle (start in config order, stop in
 * reverse). One broken plugin never takes the daemon down.
 */
import 'reflect-metadata';
import path from 'node:path';
import { container as globalContainer } from 'tsyringe';
import type { Logger, PluginContext } from './api.js';
import { PersistedBootReason } from './bootReason.js';
import type { Config } from './config.js';
import type { EmbeddedBroker } from './embeddedBroker.js';
import { HeartbeatMonitor, parseHeartbeat } from './heartbeat.js';
import { createLogger } from './logger.js';
import { bindAdapters, instantiate, loadPlugins, type BoundAdapters, type LoadedPlugin, type PluginInstance } from './pluginHost.js';
import { Router } from './router.js';
import { FileStateStore } from './state.js';
import { StatusPublisher } from './statusPublisher.js';
import { Topics } from './topics.js';
import { MqttTransport } from './transport.js';
import { ResetVetoRegistry } from './vetoes.js';

export interface DaemonOptions {
  /** environment for child processes (adapters); default process.env */
  env?: Record<string, string | undefined>;
  logger?: Logger;
}

export interface ResolvedSetup {
  plugins: LoadedPlugin[];
  adapters: BoundAdapters;
}

export class Daemon {
  readonly config: Config;
  readonly log: Logger;
  readonly topics: Topics;
  readonly env: Record<string, string | undefined>;
  readonly everest: HeartbeatMonitor;
  #transport: MqttTransport | undefined;
  #publisher: StatusPublisher | undefined;
  #router: Router | undefined;
  #broker: EmbeddedBroker | undefined;
  #plugins: PluginInstance[] = [];
  #commTimer: NodeJS.Timeout | undefined;
  #subscribed = false;
  #pluginsStarted = false;
  #stopping: Promise<void> | undefined;
  #brokerUrl: string | undefined;

  constructor(config: Config, options: DaemonOptions = {}) {
    this.config = config;
    this.log = options.logger ?? createLogger({ level: config.log.level, pretty: config.log.pretty });
    this.env = options.env ?? { ...process.env };
    this.topics = new Topics(config.moduleId, config.mqtt.externalPrefix);
    this.everest = new HeartbeatMonitor(config.heartbeat.timeoutMs, this.log.child({ component: 'heartbeat' }));
  }

  /** URL of the broker in use (the embedded one when configured). */
  get brokerUrl(): string | undefined {
    return this.#brokerUrl;
  }

  get connected(): boolean {
    return this.#transport?.connected ?? false;
  }

  /** Loads plugins and binds adapters without running anything (check-config uses this too). */
  async resolve(): Promise<ResolvedSetup> {
    const plugins = await loadPlugins(this.config);
    const adapters = await bindAdapters(this.config, plugins, {
      log: this.log,
      stateDir: this.config.stateDir,
      env: this.env,
    });
    return { plugins, adapters };
  }

  /** Starts everything; throws a SystemClientError for configuration problems. */
  async start(): Promise<void> {
    const { plugins, adapters } = await this.resolve();
    const coreState = new FileStateStore(path.join(this.config.stateDir, 'core'), this.log);
    await coreState.keys(); // creates the state dir now: an unwritable one fails at start-up

    const embedded = this.config.mqtt.embeddedBroker;
    if (embedded) {
      // aedes is only needed for the embedded broker: loaded on demand (about 80 ms of start-up otherwise)
      const { startEmbeddedBroker } = await import('./embeddedBroker.js');
      this.#broker = await startEmbeddedBroker(embedded.host, embedded.port, this.log);
      this.#brokerUrl = this.#broker.url;
      this.log.info({ url: this.#broker.url, watch: `mosquitto_sub -h ${this.#broker.host} -p ${this.#broker.port} -t '${this.topics.base}#' -v` }, 'embedded MQTT broker listening');
    } else {
      this.#brokerUrl = this.config.mqtt.url;
    }
    const transport = new MqttTransport(this.config.mqtt, this.config.moduleId, this.log.child({ component: 'mqtt' }), this.#brokerUrl);
    this.#transport = transport;
    const publisher = new StatusPublisher(transport, this.topics, this.everest, coreState, this.log.child({ component: 'status' }), this.config.heartbeat.timeoutMs);
    this.#publisher = publisher;
    await publisher.restore();
    const router = new Router({
      topics: this.topics,
      log: this.log.child({ component: 'router' }),
      requestTimeoutMs: this.config.requestTimeoutMs,
      committedTimeoutMs: this.config.committedTimeoutMs,
      maxPayloadBytes: this.config.maxPayloadBytes,
      publish: (topic, payload) => transport.publish(topic, payload),
      onHeartbeat: (payload) => {
        this.everest.onHeartbeat(payload);
        if (parseHeartbeat(payload) !== undefined) publisher.onHeartbeat();
      },
    });
    this.#router = router;
    transport.on('message', (topic, payload) => router.onMessage(topic, payload));
    transport.on('connect', () => {
      this.#subscribed = false;
      void this.#afterConnect();
    });
    transport.start();

    const vetoes = new ResetVetoRegistry(this.log);
    const bootReason = new PersistedBootReason(coreState, this.log.child({ component: 'boot-reason' }));
    const di = globalContainer.createChildContainer();
    for (const plugin of plugins) {
      const log = this.log.child({ plugin: plugin.name });
      const context: PluginContext = {
        name: plugin.name,
        log,
        options: Object.freeze(plugin.options),
        state: new FileStateStore(path.join(this.config.stateDir, 'plugins', plugin.name), log),
        publish: (topic, value, opts) => publisher.publish(topic, value, opts, plugin.name),
        everest: this.everest,
        resetVetoes: vetoes,
        bootReason,
        env: this.env,
        moduleId: this.config.moduleId,
        stateDir: this.config.stateDir,
      };
      const instance = instantiate(di, plugin, context, adapters);
      try {
        await withTimeout(Promise.resolve(instance.instance.start?.()), 30_000, `plugin "${plugin.name}" did not finish start() within 30 s`);
      } catch (err) {
        this.log.error({ plugin: plugin.name, error: (err as Error).message }, `failed to start plugin "${plugin.name}"; its operations get the safe reply`);
        continue;
      }
      for (const [op, handler] of instance.handlers) router.route(op, plugin.name, handler);
      this.#plugins.push(instance);
      this.log.info({ plugin: plugin.name, source: plugin.source, operations: plugin.cls.operations, adapters: Object.fromEntries((plugin.cls.adapters ?? []).map((s) => [s, adapters[s]?.description])) }, 'plugin started');
    }
    this.#pluginsStarted = true;
    if (transport.connected) await this.#afterConnect();
  }

  /**
   * Subscribes (once plugins run) and starts the communication check on every (re)connect.
   * communication_check tells EVerest the module is there, so it starts only once requests are
   * listened to: sent earlier, EVerest's first requests would go nowhere.
   */
  async #afterConnect(): Promise<void> {
    const transport = this.#transport;
    if (!transport?.connected || this.#stopping || !this.#pluginsStarted) return;
    if (!this.#subscribed) {
      this.#subscribed = true;
      try {
        await transport.subscribe(this.topics.e2mFilter);
        this.log.info({ filter: this.topics.e2mFilter }, 'listening for EVerest requests');
        this.#publisher?.listening();
      } catch (err) {
        this.#subscribed = false;
        this.log.error({ error: (err as Error).message }, 'subscribe failed');
      }
    }
    this.#startCommunicationCheck();
  }

  #startCommunicationCheck(): void {
    clearInterval(this.#commTimer);
    const send = () => {
      if (this.#stopping) return;
      void this.#transport?.publish(this.topics.m2e('communication_check'), 'true');
    };
    send();
    this.#commTimer = setInterval(send, this.config.communicationCheck.intervalMs);
  }

  /** Waits for the first broker connection (tests and the demo use this). */
  async waitConnected(): Promise<void> {
    await this.#transport?.firstConnect;
  }

  /**
   * Graceful shutdown: communication check false (EVerest stops checking), stop accepting
   * requests, let in-flight replies go out, stop plugins in reverse (they persist their work),
   * deliver or persist queued statuses, disconnect.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    clearInterval(this.#commTimer);
    const transport = this.#transport;
    if (transport?.connected) await transport.publish(this.topics.m2e('communication_check'), 'false');
    const deadline = this.config.shutdownTimeoutMs;
    if (this.#router) {
      await withTimeout(this.#router.drain(), Math.min(2000, deadline), 'requests in flight').catch((err) => this.log.warn({ error: (err as Error).message }, 'shutdown: not every request finished'));
    }
    for (const plugin of [...this.#plugins].reverse()) {
      this.#router?.unroute(plugin.name);
      try {
        await withTimeout(Promise.resolve(plugin.instance.stop?.()), deadline, `plugin "${plugin.name}" did not stop within ${deadline} ms`);
      } catch (err) {
        this.log.error({ plugin: plugin.name, error: (err as Error).message }, 'plugin stop failed');
      }
    }
    this.#plugins = [];
    this.everest.stop();
    await this.#publisher?.settle();
    await transport?.stop();
    await this.#broker?.close();
    this.#router?.flushLog();
    this.log.info('stopped');
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
