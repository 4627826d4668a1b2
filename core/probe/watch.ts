/**
 * `probe watch`: a live timeline of every message on the module's topics
 * (`<prefix>everest_api/1/system/<moduleId>/#`): time, direction, topic suffix and payload;
 * replies matched to their request; statuses coloured; heartbeat and communication_check
 * summarised instead of one line each, with anomalies (counter going back = EVerest restarted,
 * missed beats, invalid payloads) and the communication check as EVerest evaluates it.
 */
import { parseHeartbeat } from '../heartbeat.js';
import { systemApiSchemas } from '../schemas.js';
import { EXIT, ProbeError, type ProbeIO } from './io.js';
import { withSession, type CommonOptions } from './operations.js';

export interface WatchOptions extends CommonOptions {
  /** stop after this many seconds (default: until Ctrl-C) */
  durationS?: number;
  /** a summary line every this many seconds (non-terminal output; default 10) */
  summaryS?: number;
}

interface Stats {
  heartbeat: { count: number; first?: string; last?: string };
  communicationCheck: { true: number; false: number };
}

const STATUS_FIELD: Record<string, string> = { firmware_update_status: 'firmware_update_status', log_status: 'log_status' };

export function watch(opts: WatchOptions, io: ProbeIO): Promise<number> {
  return withSession({ heartbeatMs: 0, ...opts }, io, async (session, rep) => {
    const base = session.side.topics.base;
    const stats: Stats = { heartbeat: { count: 0 }, communicationCheck: { true: 0, false: 0 } };
    let lastSummary = { hb: 0, cc: 0 };
    let previousBeat: bigint | undefined;
    /** wire reply topic -> request */
    const pending = new Map<string, { op: string; at: number }>();
    const c = rep.c;

    const summary = (final = false) => {
      const fields = {
        heartbeat: stats.heartbeat,
        communication_check: stats.communicationCheck,
        comm_check_state: session.comm.state,
        ...(session.comm.activeFault ? { active_fault: session.comm.activeFault } : {}),
        ...(final ? { final: true } : {}),
      };
      rep.event('summary', fields, summaryText());
      lastSummary = { hb: stats.heartbeat.count, cc: stats.communicationCheck.true + stats.communicationCheck.false };
    };
    const summaryText = () => {
      const hb = stats.heartbeat.count ? `heartbeat ×${stats.heartbeat.count} (${stats.heartbeat.first}..${stats.heartbeat.last})` : 'no heartbeat';
      const cc = stats.communicationCheck;
      const ccText = cc.true + cc.false ? `communication_check true ×${cc.true}${cc.false ? `, false ×${cc.false}` : ''}` : 'no communication_check';
      const state = session.comm.activeFault ? c.red(`fault "${session.comm.activeFault}"`) : session.comm.state === 'ok' ? c.green('check ok') : c.yellow(`check ${session.comm.state}`);
      return `${c.dim('·')} ${hb} · ${ccText} · ${state}`;
    };

    const onMessage = (topic: string, raw: Buffer) => {
      if (!topic.startsWith(base)) return;
      const suffix = topic.slice(base.length);
      const dir = suffix.startsWith('e2m/') ? 'e2m' : suffix.startsWith('m2e/') ? 'm2e' : '?';
      const name = dir === '?' ? suffix : suffix.slice(4);
      if (name === 'heartbeat' && dir === 'e2m') return onHeartbeat(raw);
      if (name === 'communication_check' && dir === 'm2e') {
        const t = raw.toString().trim();
        if (t === 'true') stats.communicationCheck.true += 1;
        else if (t === 'false') stats.communicationCheck.false += 1;
        return; // the session's CommCheckMonitor reports state changes and invalid payloads
      }
      let value: unknown;
      let json = raw.length > 0;
      try {
        value = raw.length ? JSON.parse(raw.toString()) : undefined;
      } catch {
        json = false;
      }
      const fields: Record<string, unknown> = { dir, name, topic, bytes: raw.length, payload: json ? value : null };
      if (!json && raw.length) fields.raw = raw.toString().slice(0, 2000);
      const arrow = dir === 'e2m' ? c.cyan('→ e2m/') : dir === 'm2e' ? c.magenta('← m2e/') : '? ';
      const shown = raw.length === 0 ? c.dim('(zero bytes)') : json ? clip(JSON.stringify(value)) : `${clip(raw.toString())} ${c.yellow('(not JSON)')}`;
      let human = `${arrow}${name} ${shown}`;
      if (dir === 'e2m') {
        const replyTo = (value as { headers?: { replyTo?: unknown } } | undefined)?.headers?.replyTo;
        if (typeof replyTo === 'string') pending.set(`${session.side.topics.prefix}${replyTo}`, { op: name, at: Date.now() });
        const payload = (value as { payload?: unknown } | undefined)?.payload;
        if (typeof replyTo === 'string') human = `${arrow}${c.bold(name)} ${payload === undefined ? c.dim('(no payload)') : clip(JSON.stringify(payload))}`;
      } else if (name.startsWith('reply/')) {
        const req = pending.get(topic);
        pending.delete(topic);
        if (req) {
          fields.op = req.op;
          fields.ms = Date.now() - req.at;
          const problem = json ? systemApiSchemas().reply(req.op, value) : 'not JSON';
          if (problem) fields.invalid = problem;
          human = `${c.magenta('← reply')} to ${c.bold(req.op)} ${json ? rep.status(value) : shown} ${c.dim(`(${fields.ms} ms)`)}${problem ? c.yellow(` invalid: ${problem}`) : ''}`;
        } else {
          human = `${c.magenta('← m2e/')}${name} ${json ? rep.status(value) : shown}`;
        }
      } else if (STATUS_FIELD[name]) {
        const problem = json ? systemApiSchemas().status(name, value) : 'not JSON';
        if (problem) fields.invalid = problem;
        const v = value as Record<string, unknown> | undefined;
        human = problem
          ? `${arrow}${name} ${shown} ${c.yellow(`invalid (${problem}): EVerest drops it`)}`
          : `${arrow}${name} ${rep.status(v![STATUS_FIELD[name]!])} ${c.dim(`request ${String(v!.request_id)}`)}`;
      }
      rep.event('message', fields, human);
    };

    const onHeartbeat = (raw: Buffer) => {
      const value = parseHeartbeat(raw);
      if (value === undefined) {
        rep.event('warning', { message: 'heartbeat is not a u64 integer', raw: raw.toString().slice(0, 100) }, c.yellow(`warning: e2m/heartbeat ${JSON.stringify(raw.toString().slice(0, 100))} is not a u64 integer`));
        return;
      }
      const hb = stats.heartbeat;
      hb.count += 1;
      hb.first ??= value.toString();
      hb.last = value.toString();
      if (previousBeat === undefined) {
        rep.event('heartbeat', { action: 'seen', value: value.toString() }, c.dim(`e2m/heartbeat seen, counter ${value}`));
      } else if (value < previousBeat && !(previousBeat === (1n << 64n) - 1n && value === 0n)) {
        rep.event('heartbeat', { action: 'restart', previous: previousBeat.toString(), value: value.toString() }, c.yellow(`e2m/heartbeat went back from ${previousBeat} to ${value}: EVerest restarted (or a second sender)`));
      } else if (value > previousBeat + 1n) {
        rep.event('heartbeat', { action: 'gap', previous: previousBeat.toString(), value: value.toString() }, c.yellow(`e2m/heartbeat jumped from ${previousBeat} to ${value} (${value - previousBeat - 1n} missed)`));
      }
      previousBeat = value;
    };

    const client = session.side.client;
    client.on('message', onMessage);
    try {
      await client.subscribeAsync(`${base}#`, { qos: 0 });
      await client.unsubscribeAsync(`${base}m2e/#`);
    } catch (err) {
      throw new ProbeError(`cannot subscribe to ${base}#: ${(err as Error).message}`, EXIT.usage);
    }
    rep.event('watching', { filter: `${base}#` }, c.dim(`watching ${base}# ${opts.durationS ? `for ${opts.durationS} s` : '(Ctrl-C stops)'}`));
    if (rep.tty) rep.startLive(summaryText);
    const summaryMs = (opts.summaryS ?? 10) * 1000;
    const periodic = rep.tty
      ? undefined
      : setInterval(() => {
          if (stats.heartbeat.count !== lastSummary.hb || stats.communicationCheck.true + stats.communicationCheck.false !== lastSummary.cc) summary();
        }, summaryMs);
    try {
      await waitUntilDone(opts.durationS, io.signal);
    } finally {
      clearInterval(periodic);
      client.off('message', onMessage);
      rep.stopLive();
    }
    summary(true);
    return { code: EXIT.ok };
  });
}

function clip(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function waitUntilDone(durationS: number | undefined, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = durationS !== undefined ? setTimeout(done, durationS * 1000) : undefined;
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
