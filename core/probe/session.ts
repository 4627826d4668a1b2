/**
 * One probe run on the wire: the broker connection, EVerest's heartbeat, the communication check
 * as EVerest evaluates it, and request/reply with EVerest's conventions (core/everestSide.ts).
 */
import { randomInt, randomUUID } from 'node:crypto';
import { SAFE_REPLIES, type Operation } from '../api.js';
import { EverestSide, type M2eMessage } from '../everestSide.js';
import { systemApiSchemas } from '../schemas.js';
import { connectBroker, type ResolvedBroker } from './broker.js';
import { CommCheckMonitor, FAULT_TYPE, type CommCheckEvent } from './commcheck.js';
import { EXIT, ProbeError, show, type Reporter } from './io.js';

export interface WireOptions {
  /** EVerest's cfg_heartbeat_interval_ms; <= 0: no heartbeat */
  heartbeatMs: number;
  /** first counter value; undefined: random */
  heartbeatFrom?: bigint;
  /** EVerest's cfg_communication_check_to_s; <= 0: no check */
  commTimeoutS: number;
}

export interface Reply {
  value: unknown;
  raw: Buffer;
  ms: number;
}

export class ProbeSession {
  readonly comm: CommCheckMonitor;
  #closed = false;

  private constructor(
    readonly side: EverestSide,
    readonly rep: Reporter,
    readonly broker: ResolvedBroker,
    readonly wire: WireOptions,
  ) {
    this.comm = new CommCheckMonitor(wire.commTimeoutS, (e) => reportCommCheck(rep, e, this.comm.timeoutMs));
    side.on('message', (m) => this.#onMessage(m));
  }

  static async open(broker: ResolvedBroker, wire: WireOptions, rep: Reporter, signal?: AbortSignal): Promise<ProbeSession> {
    const client = await connectBroker(broker, signal);
    let side: EverestSide;
    try {
      side = await EverestSide.attach(client, { moduleId: broker.moduleId, prefix: broker.prefix });
    } catch (err) {
      await client.endAsync(true).catch(() => undefined);
      throw new ProbeError(`cannot subscribe on the MQTT broker at ${broker.shownUrl}: ${(err as Error).message}`);
    }
    const session = new ProbeSession(side, rep, broker, wire);
    rep.event(
      'connected',
      { url: broker.shownUrl, module_id: broker.moduleId, prefix: broker.prefix, topics: `${side.topics.base}{e2m,m2e}/...` },
      `${rep.c.bold('connected')} to ${broker.shownUrl}, module ${broker.moduleId}${broker.prefix ? `, prefix "${broker.prefix}"` : ''}`,
    );
    if (wire.heartbeatMs > 0) {
      const from = wire.heartbeatFrom ?? BigInt(randomInt(0, 1_000_000));
      side.startHeartbeat(wire.heartbeatMs, from);
      rep.event(
        'heartbeat',
        { action: 'started', from: from.toString(), interval_ms: wire.heartbeatMs },
        rep.c.dim(`sending e2m/heartbeat every ${wire.heartbeatMs} ms, counter from ${from}`),
      );
    }
    session.comm.start();
    return session;
  }

  #onMessage(m: M2eMessage): void {
    if (m.name === 'communication_check') this.comm.feed(m.raw);
    // EverestSide keeps every message; a long run must not grow without bound
    if (this.side.messages.length > 2000) this.side.messages.splice(0, 1000);
  }

  /**
   * Sends a request the way EVerest does (fresh uuid reply topic, subscribed first) and waits for
   * the reply. Throws ProbeError with exit code 3 when none arrives in time.
   */
  async request(op: Operation, payload: unknown, timeoutMs: number, shownPayload: unknown = payload): Promise<Reply> {
    const side = this.side;
    const replyTo = `${side.topics.unprefixedBase}m2e/reply/${randomUUID()}`;
    const wireReply = `${side.topics.prefix}${replyTo}`;
    const envelope: Record<string, unknown> = { headers: { replyTo } };
    if (payload !== undefined) envelope.payload = payload;
    const reply = side.nextMessage((m) => m.topic === wireReply, timeoutMs, `reply to ${op}`);
    reply.catch(() => undefined);
    const sent = Date.now();
    // while the broker is away mqtt.js queues these; the reply deadline bounds the wait
    await Promise.race([
      (async () => {
        await side.client.subscribeAsync(wireReply, { qos: 0 });
        await side.client.publishAsync(side.topics.e2m(op), JSON.stringify(envelope), { qos: 0 });
      })(),
      reply.then(
        () => undefined,
        () => undefined,
      ),
    ]);
    this.rep.event('request', { op, payload: shownPayload, reply_to: replyTo }, `${this.rep.c.cyan('→')} ${this.rep.c.bold(op)} ${payload === undefined ? '' : show(shownPayload)}`.trimEnd());
    let m: M2eMessage;
    try {
      m = await reply;
    } catch {
      const fallback = SAFE_REPLIES[op as keyof typeof SAFE_REPLIES];
      throw new ProbeError(
        `no reply to ${op} within ${timeoutMs / 1000} s (EVerest would use its default: ${JSON.stringify(fallback)})`,
        EXIT.noReply,
        { op, default: fallback },
      );
    } finally {
      await side.client.unsubscribeAsync(wireReply).catch(() => undefined);
    }
    const ms = Date.now() - sent;
    const problem = m.value === undefined ? 'not JSON' : systemApiSchemas().reply(op, m.value);
    this.rep.event(
      'reply',
      { op, value: m.value ?? null, ms, ...(problem ? { invalid: problem, raw: m.raw.toString().slice(0, 500) } : {}) },
      `${this.rep.c.cyan('←')} reply ${this.rep.status(m.value ?? m.raw.toString())} ${this.rep.c.dim(`(${ms} ms)`)}`,
    );
    if (problem) {
      this.rep.event('warning', { message: `reply does not match the system_API schema: ${problem}` }, this.rep.c.yellow(`warning: the reply does not match the system_API schema (${problem}); EVerest would drop it and use its default`));
    }
    return { value: m.value, raw: m.raw, ms };
  }

  /** A fire-and-forget command: allow_firmware_installation (zero bytes) or reset (bare JSON). */
  async command(op: 'allow_firmware_installation' | 'reset', payload?: unknown, why?: string): Promise<void> {
    await this.side.command(op, payload);
    this.rep.event(
      'command',
      { op, ...(payload === undefined ? { bytes: 0 } : { payload }), ...(why ? { why } : {}) },
      `${this.rep.c.cyan('→')} ${this.rep.c.bold(op)} ${payload === undefined ? this.rep.c.dim('(zero bytes)') : show(payload)}${why ? this.rep.c.dim(` (${why})`) : ''}`,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.comm.stop();
    this.side.stopHeartbeat();
    // a graceful end lets QoS 0 publishes still in the socket buffer (reset, allow) reach the broker
    const client = this.side.client;
    const graceful = client.endAsync(false).catch(() => undefined);
    const timer = setTimeout(() => client.end(true), 2000);
    await graceful;
    clearTimeout(timer);
    await this.side.close();
  }
}

/** How the communication check shows up: as EVerest would raise and clear its error. */
export function reportCommCheck(rep: Reporter, e: CommCheckEvent, timeoutMs: number): void {
  const c = rep.c;
  switch (e.kind) {
    case 'fault':
      if (e.action === 'raised') {
        rep.event(
          'fault',
          { action: 'raised', type: FAULT_TYPE, sub_type: e.subType },
          e.subType === 'Initial communication check'
            ? c.dim(`communication check: EVerest holds ${FAULT_TYPE} "${e.subType}" until the first m2e/communication_check (timeout ${timeoutMs / 1000} s)`)
            : c.red(`✖ communication fault raised: ${FAULT_TYPE} "${e.subType}" (no m2e/communication_check for ${timeoutMs / 1000} s)`),
        );
      } else {
        rep.event('fault', { action: 'cleared', type: FAULT_TYPE, sub_type: e.subType }, c.green(`communication check: "${e.subType}" cleared`));
      }
      return;
    case 'state':
      rep.event(
        'comm_check',
        { state: e.state, value: e.value },
        e.state === 'ok' ? c.green('communication check: ok (communication_check true)') : c.yellow('communication check: switched off by the daemon (communication_check false, as on a graceful shutdown)'),
      );
      return;
    case 'invalid':
      rep.event('warning', { message: 'invalid communication_check payload', raw: e.raw }, c.yellow(`warning: communication_check payload ${JSON.stringify(e.raw)} is not a JSON boolean; EVerest drops it`));
      return;
    case 'ignored':
      rep.event('comm_check', { state: 'off', value: e.value, ignored: true }, c.dim(`communication_check ${e.value} after the check was switched off (EVerest ignores it until it restarts)`));
      return;
  }
}
