/**
 * Dispatches e2m messages to plugin handlers with EVerest's conventions: request envelope
 * `{"headers":{"replyTo"}, "payload"}` answered with the bare JSON value on replyTo (external
 * prefix prepended), fire-and-forget commands, validation against the AsyncAPI schemas in both
 * directions, and the safe reply for anything that goes wrong. A handler that throws or never
 * settles cannot block other topics or take the daemon down.
 */
import {
  COMMAND_OPERATIONS, REQUEST_OPERATIONS, SAFE_REPLIES,
  type Handler, type Logger, type Operation, type RequestMeta,
} from './api.js';
import { systemApiSchemas } from './schemas.js';
import type { Topics } from './topics.js';

type RequestOp = (typeof REQUEST_OPERATIONS)[number];
type CommandOp = (typeof COMMAND_OPERATIONS)[number];

export interface RouterOptions {
  topics: Topics;
  log: Logger;
  requestTimeoutMs: number;
  /** how much longer a handler that committed is waited for */
  committedTimeoutMs: number;
  maxPayloadBytes: number;
  publish: (topic: string, payload: string) => Promise<boolean>;
  onHeartbeat: (payload: Buffer) => void;
}

interface Route {
  plugin: string;
  handler: Handler<Operation>;
}

const isRequest = (name: string): name is RequestOp => (REQUEST_OPERATIONS as readonly string[]).includes(name);
const isCommand = (name: string): name is CommandOp => (COMMAND_OPERATIONS as readonly string[]).includes(name);

/**
 * Messages over the limit, or nested deeper than any system_API message, are not parsed: JSON.parse
 * of a hostile 100,000-deep array blocks the event loop for 100+ ms. Their reply topic is looked for
 * in the first bytes only (EVerest writes "headers" before "payload"), so they get the safe reply at once.
 */
const REPLY_TO_SCAN_BYTES = 4096;
const REPLY_TO_IN_TEXT = /"replyTo"\s*:\s*"([^"\\]{1,512})"/;
/** system_API messages nest 3 levels deep; anything far deeper is hostile */
export const MAX_JSON_DEPTH = 32;

/** true when the JSON text nests arrays/objects deeper than `limit` (strings are skipped) */
export function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > limit) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/** commands have no reply to give up on */
const NEVER_ABORTED = new AbortController().signal;

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';

export class Router {
  readonly #o: RouterOptions;
  readonly #routes = new Map<Operation, Route>();
  /** requests in flight, for shutdown */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: RouterOptions) {
    this.#o = options;
  }

  route(op: Operation, plugin: string, handler: Handler<Operation>): void {
    this.#routes.set(op, { plugin, handler });
  }

  unroute(plugin: string): void {
    for (const [op, r] of this.#routes) if (r.plugin === plugin) this.#routes.delete(op);
  }

  /** resolves when every request in flight has been answered */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
  }

  onMessage(topic: string, payload: Buffer): void {
    const name = this.#o.topics.inboundName(topic);
    if (name === undefined) return;
    if (name === 'heartbeat') {
      this.#o.onHeartbeat(payload);
      return;
    }
    let work: Promise<void>;
    if (isRequest(name)) work = this.#request(name, topic, payload);
    else if (isCommand(name)) work = this.#command(name, topic, payload);
    else {
      this.#o.log.warn({ topic }, 'ignoring unknown e2m topic');
      return;
    }
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }

  async #request(op: RequestOp, topic: string, payload: Buffer): Promise<void> {
    const started = performance.now();
    const log = this.#o.log;
    const finish = (outcome: string, replyTopic: string | undefined, reply: unknown, extra: Record<string, unknown> = {}) => {
      const durationMs = Math.round((performance.now() - started) * 10) / 10;
      const sent = replyTopic === undefined ? undefined : this.#o.publish(replyTopic, JSON.stringify(reply));
      // the reply first (its socket write runs on the next tick), then the log line, one per
      // request with its topic, outcome and duration: EVerest need not wait for a log write
      setImmediate(() => {
        const line = { op, topic, outcome, reply, durationMs, ...extra };
        if (outcome === 'ok') log.info(line, 'request');
        else log.warn(line, 'request');
      });
      return sent ? sent.then(() => undefined) : Promise.resolve();
    };
    const safe = SAFE_REPLIES[op];

    const notParsed = (reason: string) => {
      const found = REPLY_TO_IN_TEXT.exec(payload.subarray(0, REPLY_TO_SCAN_BYTES).toString('utf8'))?.[1];
      const checked = found === undefined ? undefined : this.#o.topics.replyTopic(found);
      const replyTopic = checked?.ok ? checked.topic : undefined;
      return finish('rejected', replyTopic, replyTopic ? safe : undefined, { reason: `${reason}; not parsed` });
    };
    if (payload.length > this.#o.maxPayloadBytes) {
      return notParsed(`payload of ${payload.length} bytes exceeds maxPayloadBytes ${this.#o.maxPayloadBytes}`);
    }
    const text = payload.toString('utf8');
    if (nestedDeeperThan(text, MAX_JSON_DEPTH)) return notParsed(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    let message: unknown;
    let parseError: string | undefined;
    try {
      message = JSON.parse(text);
    } catch (err) {
      parseError = (err as Error).message;
    }
    let replyTo: unknown =
      message && typeof message === 'object' && !Array.isArray(message)
        ? (message as { headers?: { replyTo?: unknown } }).headers?.replyTo
        : undefined;
    if (parseError !== undefined) {
      // a broken body can still carry an intact reply topic: answer it with the safe reply
      replyTo = REPLY_TO_IN_TEXT.exec(text)?.[1];
    }
    let replyTopic: string | undefined;
    if (replyTo !== undefined) {
      const checked = this.#o.topics.replyTopic(replyTo);
      if (!checked.ok) {
        return finish('rejected', undefined, undefined, { reason: `${checked.reason}; not replying` });
      }
      replyTopic = checked.topic;
    }
    if (parseError !== undefined) return finish('rejected', replyTopic, safe, { reason: `malformed JSON: ${parseError}` });
    const invalid = systemApiSchemas().inbound(op, message);
    if (invalid) return finish('rejected', replyTopic, safe, { reason: `invalid request: ${invalid}` });
    const route = this.#routes.get(op);
    if (!route) return finish('unhandled', replyTopic, safe, { reason: 'no running plugin handles this operation' });

    // open -> committed (the handler passed its point of no return) or timed-out (safe reply sent)
    let state: 'open' | 'committed' | 'timed-out' = 'open';
    // made on first use: most handlers answer at once and never look at the signal
    let aborter: AbortController | undefined;
    let timedOut: Error | undefined;
    const meta: RequestMeta = {
      topic,
      replyTo: replyTopic,
      receivedAt: new Date(),
      get signal() {
        if (!aborter) {
          aborter = new AbortController();
          if (timedOut) aborter.abort(timedOut);
        }
        return aborter.signal;
      },
      commit: () => {
        if (state === 'open') state = 'committed';
        return state === 'committed';
      },
    };
    const body = (message as { payload?: unknown }).payload;
    let result: { value: unknown } | { timeout: true } | { error: Error } | undefined;
    let answer: unknown;
    try {
      answer = route.handler(body as never, meta);
    } catch (err) {
      result = { error: err as Error };
    }
    if (result === undefined && !isThenable(answer)) {
      // answered at once: no timer, no race
      result = { value: answer };
    } else if (result === undefined) {
      const call = Promise.resolve(answer).then((value) => ({ value }));
      const timeoutMs = this.#o.requestTimeoutMs;
      result = await new Promise<{ value: unknown } | { timeout: true } | { error: Error }>((resolve) => {
        let extended = false;
        // the state changes inside the timer callback, so a commit() after it sees timed-out
        const fire = () => {
          if (state === 'committed' && !extended) {
            // its side effect is under way: the safe reply would be untrue, so it waits longer
            extended = true;
            log.warn({ op, plugin: route.plugin, waitMs: this.#o.committedTimeoutMs }, 'handler committed to an answer it has not given yet; waiting for it');
            timer = setTimeout(fire, this.#o.committedTimeoutMs);
            return;
          }
          state = 'timed-out';
          timedOut = new Error(`no answer within ${extended ? timeoutMs + this.#o.committedTimeoutMs : timeoutMs} ms`);
          aborter?.abort(timedOut);
          resolve({ timeout: true });
        };
        let timer = setTimeout(fire, timeoutMs);
        call.then(
          (r) => {
            clearTimeout(timer);
            resolve(r);
          },
          (err: unknown) => {
            clearTimeout(timer);
            resolve({ error: err as Error });
          },
        );
      });
      if ('timeout' in result) {
        call.then(
          (late) => log.warn({ op, plugin: route.plugin, late: late.value }, 'handler answered after the safe reply was sent; ignored'),
          () => undefined,
        );
        return finish('timeout', replyTopic, safe, { plugin: route.plugin, reason: `handler did not answer: ${timedOut!.message}` });
      }
    }
    if ('error' in result) {
      log.error({ op, plugin: route.plugin, error: result.error.message, stack: result.error.stack }, 'handler failed');
      return finish('error', replyTopic, safe, { plugin: route.plugin, reason: result.error.message });
    }
    const value = (result as { value: unknown }).value;
    const badReply = systemApiSchemas().reply(op, value);
    if (badReply) {
      return finish('error', replyTopic, safe, { plugin: route.plugin, reason: `handler reply is invalid (${badReply}): ${JSON.stringify(value)?.slice(0, 200)}` });
    }
    return finish('ok', replyTopic, value, { plugin: route.plugin });
  }

  async #command(op: CommandOp, topic: string, payload: Buffer): Promise<void> {
    const started = performance.now();
    const log = this.#o.log;
    const done = (outcome: string, extra: Record<string, unknown> = {}) => {
      const line = { op, topic, outcome, durationMs: Math.round((performance.now() - started) * 10) / 10, ...extra };
      if (outcome === 'ok') log.info(line, 'command');
      else log.warn(line, 'command');
    };
    let value: unknown;
    if (op === 'allow_firmware_installation') {
      // EVerest sends zero bytes; anything else is tolerated but noted
      if (payload.length) log.debug({ op, bytes: payload.length }, 'allow_firmware_installation carried a payload; ignored');
      value = undefined;
    } else {
      if (payload.length > this.#o.maxPayloadBytes) return done('rejected', { reason: `payload of ${payload.length} bytes exceeds maxPayloadBytes` });
      const text = payload.toString('utf8');
      if (nestedDeeperThan(text, MAX_JSON_DEPTH)) return done('rejected', { reason: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` });
      try {
        value = JSON.parse(text);
      } catch (err) {
        return done('rejected', { reason: `malformed JSON: ${(err as Error).message}` });
      }
      const invalid = systemApiSchemas().inbound(op, value);
      if (invalid) return done('rejected', { reason: `invalid command: ${invalid}` });
    }
    const route = this.#routes.get(op);
    if (!route) return done('unhandled', { reason: 'no running plugin handles this operation' });
    try {
      await route.handler(value as never, { topic, receivedAt: new Date(), signal: NEVER_ABORTED, commit: () => true });
      done('ok', { plugin: route.plugin });
    } catch (err) {
      log.error({ op, plugin: route.plugin, error: (err as Error).message, stack: (err as Error).stack }, 'handler failed');
      done('error', { plugin: route.plugin, reason: (err as Error).message });
    }
  }
}
