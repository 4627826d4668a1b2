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

const REQUESTS: ReadonlySet<string> = new Set(REQUEST_OPERATIONS);
const COMMANDS: ReadonlySet<string> = new Set(COMMAND_OPERATIONS);
const isRequest = (name: string): name is RequestOp => REQUESTS.has(name);
const isCommand = (name: string): name is CommandOp => COMMANDS.has(name);

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

/** the longest a request line waits to be written with others */
const LOG_BATCH_MS = 10;

interface RequestLine {
  /** the logger of the line's operation and topic */
  log: Logger;
  outcome: string;
  reply: unknown;
  durationMs: number;
  extra: Record<string, unknown> | undefined;
}

/** commands have no reply to give up on */
const NEVER_ABORTED = new AbortController().signal;

/** the start of a value for a log line; a handler's reply may be anything, even unserialisable */
function preview(value: unknown): string {
  try {
    return (JSON.stringify(value) ?? String(value)).slice(0, 200);
  } catch {
    try {
      return String(value).slice(0, 200);
    } catch {
      return '(unprintable)';
    }
  }
}

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';

/**
 * What a request's handler sees of it (RequestMeta). A class rather than an object literal with a
 * getter: one is made per request, and a literal with an accessor is built through V8's slow path.
 */
class RequestContext implements RequestMeta {
  /** open -> committed (the handler passed its point of no return) or timed-out (safe reply sent) */
  state: 'open' | 'committed' | 'timed-out' = 'open';
  timedOut: Error | undefined;
  readonly #receivedAtMs = Date.now();
  /** made on first use: most handlers answer at once and never look at the signal */
  #aborter: AbortController | undefined;

  constructor(
    readonly topic: string,
    readonly replyTo: string | undefined,
  ) {}

  get receivedAt(): Date {
    return new Date(this.#receivedAtMs);
  }

  get signal(): AbortSignal {
    if (!this.#aborter) {
      this.#aborter = new AbortController();
      if (this.timedOut) this.#aborter.abort(this.timedOut);
    }
    return this.#aborter.signal;
  }

  /** an own property, so that a handler may pass `meta.commit` on by itself */
  readonly commit = (): boolean => {
    if (this.state === 'open') this.state = 'committed';
    return this.state === 'committed';
  };

  /** the safe reply was sent: a later commit() returns false and the signal is aborted */
  timeOut(reason: Error): void {
    this.state = 'timed-out';
    this.timedOut = reason;
    this.#aborter?.abort(reason);
  }
}

/** A request whose handler answers later: what its reply and its log line need. */
class Waiting {
  /** the timeout was pushed back once because the handler had committed */
  extended = false;
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly op: RequestOp,
    readonly topic: string,
    readonly started: number,
    readonly replyTopic: string | undefined,
    readonly plugin: string,
    readonly meta: RequestContext,
    /** performance.now() time of its safe reply */
    readonly deadline: number,
  ) {}
}

export class Router {
  readonly #o: RouterOptions;
  readonly #routes = new Map<Operation, Route>();
  /** requests waiting for their handler (for shutdown) */
  readonly #waiting = new Set<Waiting>();
  /**
   * Those of them still on requestTimeoutMs, oldest first. All have the same timeout, so the
   * oldest is always the next to time out, and one timer serves them all: no timer is set and
   * cleared per request.
   */
  readonly #deadlines = new Set<Waiting>();
  #deadlineTimer: NodeJS.Timeout | undefined;
  #drained: (() => void)[] = [];
  /** commands in flight (for shutdown) */
  readonly #commands = new Set<Promise<void>>();
  /** request lines waiting for the next batch */
  #lines: RequestLine[] = [];
  #linesTimer: NodeJS.Timeout | undefined;
  readonly #requestLogs = new Map<string, Logger>();

  constructor(options: RouterOptions) {
    this.#o = options;
  }

  route(op: Operation, plugin: string, handler: Handler<Operation>): void {
    this.#routes.set(op, { plugin, handler });
  }

  unroute(plugin: string): void {
    for (const [op, r] of this.#routes) if (r.plugin === plugin) this.#routes.delete(op);
  }

  /**
   * Resolves when every request waiting for its handler has been answered and every command has
   * finished. A reply already handed to the transport is flushed by its graceful disconnect.
   */
  async drain(): Promise<void> {
    if (this.#waiting.size) await new Promise<void>((resolve) => this.#drained.push(resolve));
    await Promise.allSettled([...this.#commands]);
  }

  onMessage(topic: string, payload: Buffer): void {
    const name = this.#o.topics.inboundName(topic);
    if (name === undefined) return;
    if (name === 'heartbeat') {
      this.#o.onHeartbeat(payload);
      return;
    }
    if (isRequest(name)) this.#request(name, topic, payload);
    else if (isCommand(name)) {
      const work = this.#command(name, topic, payload);
      this.#commands.add(work);
      void work.finally(() => this.#commands.delete(work));
    } else this.#o.log.warn({ topic }, 'ignoring unknown e2m topic');
  }

  /** Writes the request lines waiting for the next batch now (shutdown calls it). */
  flushLog(): void {
    clearTimeout(this.#linesTimer);
    this.#linesTimer = undefined;
    const lines = this.#lines;
    this.#lines = [];
    for (const { log, outcome, reply, durationMs, extra } of lines) {
      const fields = { outcome, reply, durationMs, ...extra };
      if (outcome === 'ok') log.info(fields, 'request');
      else log.warn(fields, 'request');
    }
  }

  #request(op: RequestOp, topic: string, payload: Buffer): void {
    const started = performance.now();
    const safe = SAFE_REPLIES[op];
    if (payload.length > this.#o.maxPayloadBytes) {
      return this.#notParsed(op, topic, started, payload, `payload of ${payload.length} bytes exceeds maxPayloadBytes ${this.#o.maxPayloadBytes}`);
    }
    const text = payload.toString('utf8');
    if (nestedDeeperThan(text, MAX_JSON_DEPTH)) return this.#notParsed(op, topic, started, payload, `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
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
        return this.#finish(op, topic, started, 'rejected', undefined, undefined, { reason: `${checked.reason}; not replying` });
      }
      replyTopic = checked.topic;
    }
    if (parseError !== undefined) return this.#finish(op, topic, started, 'rejected', replyTopic, safe, { reason: `malformed JSON: ${parseError}` });
    const invalid = systemApiSchemas().inbound(op, message);
    if (invalid) return this.#finish(op, topic, started, 'rejected', replyTopic, safe, { reason: `invalid request: ${invalid}` });
    const route = this.#routes.get(op);
    if (!route) return this.#finish(op, topic, started, 'unhandled', replyTopic, safe, { reason: 'no running plugin handles this operation' });

    const meta = new RequestContext(topic, replyTopic);
    let answer: unknown;
    try {
      answer = route.handler((message as { payload?: unknown }).payload as never, meta);
    } catch (err) {
      return this.#failed(op, topic, started, replyTopic, route.plugin, err);
    }
    // answered at once: no timer, no promise
    if (!isThenable(answer)) return this.#answered(op, topic, started, replyTopic, route.plugin, answer);

    const w = new Waiting(op, topic, started, replyTopic, route.plugin, meta, started + this.#o.requestTimeoutMs);
    this.#waiting.add(w);
    this.#deadlines.add(w);
    if (!this.#deadlineTimer) this.#armDeadline();
    // through Promise.resolve: a thenable whose then() throws becomes a rejection here
    Promise.resolve(answer).then(
      (value) => {
        if (this.#settle(w)) this.#answered(op, topic, started, replyTopic, route.plugin, value);
        else this.#o.log.warn({ op, plugin: route.plugin, late: value }, 'handler answered after the safe reply was sent; ignored');
      },
      (err: unknown) => {
        if (this.#settle(w)) this.#failed(op, topic, started, replyTopic, route.plugin, err);
      },
    );
  }

  /** The reply first (its socket write runs on the next tick), then the log line. */
  #finish(op: RequestOp, topic: string, started: number, outcome: string, replyTopic: string | undefined, reply: unknown, extra?: Record<string, unknown>): void {
    const durationMs = Math.round((performance.now() - started) * 10) / 10;
    if (replyTopic !== undefined) void this.#o.publish(replyTopic, JSON.stringify(reply));
    this.#logRequest({ log: this.#requestLog(op, topic), outcome, reply, durationMs, extra });
  }

  #notParsed(op: RequestOp, topic: string, started: number, payload: Buffer, reason: string): void {
    const found = REPLY_TO_IN_TEXT.exec(payload.subarray(0, REPLY_TO_SCAN_BYTES).toString('utf8'))?.[1];
    const checked = found === undefined ? undefined : this.#o.topics.replyTopic(found);
    const replyTopic = checked?.ok ? checked.topic : undefined;
    this.#finish(op, topic, started, 'rejected', replyTopic, replyTopic ? SAFE_REPLIES[op] : undefined, { reason: `${reason}; not parsed` });
  }

  #answered(op: RequestOp, topic: string, started: number, replyTopic: string | undefined, plugin: string, value: unknown): void {
    const badReply = systemApiSchemas().reply(op, value);
    if (badReply) {
      const reason = `handler reply is invalid (${badReply}): ${preview(value)}`;
      return this.#finish(op, topic, started, 'error', replyTopic, SAFE_REPLIES[op], { plugin, reason });
    }
    this.#finish(op, topic, started, 'ok', replyTopic, value, { plugin });
  }

  #failed(op: RequestOp, topic: string, started: number, replyTopic: string | undefined, plugin: string, thrown: unknown): void {
    const error = thrown instanceof Error ? thrown : new Error(String(thrown));
    this.#o.log.error({ op, plugin, error: error.message, stack: error.stack }, 'handler failed');
    this.#finish(op, topic, started, 'error', replyTopic, SAFE_REPLIES[op], { plugin, reason: error.message });
  }

  /** Takes a request off the waiting lists; false when its safe reply was sent already. */
  #settle(w: Waiting): boolean {
    if (!this.#waiting.delete(w)) return false;
    this.#deadlines.delete(w);
    clearTimeout(w.timer);
    if (!this.#waiting.size && this.#drained.length) {
      for (const resolve of this.#drained.splice(0)) resolve();
    }
    return true;
  }

  /** Sets the one timer for the oldest request on requestTimeoutMs, if any. */
  #armDeadline(): void {
    const first = this.#deadlines.values().next().value as Waiting | undefined;
    if (!first) {
      this.#deadlineTimer = undefined;
      return;
    }
    this.#deadlineTimer = setTimeout(() => this.#expire(), Math.max(1, Math.ceil(first.deadline - performance.now())));
    // the process is kept alive by its connection, not by a request's deadline
    this.#deadlineTimer.unref();
  }

  #expire(): void {
    const now = performance.now();
    for (const w of this.#deadlines) {
      if (w.deadline > now) break;
      this.#deadlines.delete(w);
      this.#timeOut(w);
    }
    this.#armDeadline();
  }

  /** requestTimeoutMs has passed (or committedTimeoutMs after it) without an answer */
  #timeOut(w: Waiting): void {
    const timeoutMs = this.#o.requestTimeoutMs;
    if (w.meta.state === 'committed' && !w.extended) {
      // its side effect is under way: the safe reply would be untrue, so it waits longer
      w.extended = true;
      this.#o.log.warn({ op: w.op, plugin: w.plugin, waitMs: this.#o.committedTimeoutMs }, 'handler committed to an answer it has not given yet; waiting for it');
      w.timer = setTimeout(() => this.#timeOut(w), this.#o.committedTimeoutMs);
      return;
    }
    // the state changes before anything else, so a commit() from now on sees timed-out
    w.meta.timeOut(new Error(`no answer within ${w.extended ? timeoutMs + this.#o.committedTimeoutMs : timeoutMs} ms`));
    this.#settle(w);
    this.#finish(w.op, w.topic, w.started, 'timeout', w.replyTopic, SAFE_REPLIES[w.op], { plugin: w.plugin, reason: `handler did not answer: ${w.meta.timedOut!.message}` });
  }

  /** one child logger per operation: pino serialises its op and topic once, not on every line */
  #requestLog(op: RequestOp, topic: string): Logger {
    let log = this.#requestLogs.get(topic);
    if (!log) {
      log = this.#o.log.child({ op, topic });
      this.#requestLogs.set(topic, log);
    }
    return log;
  }

  /**
   * The request lines, one per request with its topic, outcome and duration, are written in
   * batches at most LOG_BATCH_MS after the reply: EVerest need not wait for a log write, and a
   * burst of requests is logged in one go, at a fraction of the CPU time of one write each.
   */
  #logRequest(line: RequestLine): void {
    this.#lines.push(line);
    if (!this.#linesTimer) {
      this.#linesTimer = setTimeout(() => this.flushLog(), LOG_BATCH_MS);
      this.#linesTimer.unref();
    }
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
