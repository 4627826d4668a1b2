/**
 * Broker and EVerest checks: connect once with the configured URL, credentials and TLS files
 * (telling unreachable, refused credentials and TLS failures apart), then listen for EVerest's
 * `e2m/heartbeat` on the configured moduleId and prefix. Publishes nothing.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Config } from '../config.js';
import { Topics } from '../topics.js';
import { readable } from './tools.js';
import { fail, pass, warn, type CheckResult } from './types.js';

const redact = (url: string) => url.replace(/\/\/[^@/]*@/, '//***@');

const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL|EPROTO)/;

/** What kind of failure a connection error is, with its fix. */
export function classifyConnectError(err: Error & { code?: string | number }, url: string): { detail: string; fix: string } {
  const code = err.code;
  const msg = err.message;
  if (code === 4 || code === 5 || code === 134 || code === 135 || /not authori[sz]ed|bad user ?name or password/i.test(msg)) {
    return { detail: `the broker refused the credentials: ${msg}`, fix: 'check mqtt.username and mqtt.password against the broker\'s password file / ACL' };
  }
  if ((typeof code === 'string' && TLS_CODES.test(code)) || /certificate|ssl|tls|wrong version number/i.test(msg)) {
    return {
      detail: `TLS failed: ${msg}`,
      fix: url.startsWith('mqtts:') || url.startsWith('wss:')
        ? 'check mqtt.tls.ca (the CA that signed the broker certificate), the host name in mqtt.url against the certificate, and the client certificate for mutual TLS'
        : 'the URL is not TLS: use mqtts:// for a TLS listener',
    };
  }
  if (typeof code === 'string' && /^(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|ECONNRESET|ENOENT)$/.test(code)) {
    return { detail: `broker unreachable (${code}): ${msg}`, fix: 'start the broker (mosquitto.service) or fix the host and port in mqtt.url' };
  }
  return { detail: msg, fix: 'check mqtt.url and the broker log' };
}

export interface BrokerReport {
  rows: CheckResult[];
}

/** Connects, reports, waits up to `heartbeatWaitMs` for EVerest's heartbeat, disconnects. */
export async function checkBrokerAndEverest(config: Config, heartbeatWaitMs: number): Promise<CheckResult[]> {
  const m = config.mqtt;
  if (m.embeddedBroker) {
    return [warn('broker', `embedded broker on ${m.embeddedBroker.host}:${m.embeddedBroker.port} (development only); not started by doctor`,
      'on a board, point mqtt.url at the broker EVerest uses and drop mqtt.embeddedBroker')];
  }
  const url = m.url;
  const rows: CheckResult[] = [];
  const options: IClientOptions = {
    clientId: `everest-system-doctor-${Math.random().toString(16).slice(2, 10)}`,
    username: m.username,
    password: m.password,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    clean: true,
  };
  if (m.tls) {
    for (const k of ['ca', 'cert', 'key'] as const) {
      const file = m.tls[k];
      if (!file) continue;
      const why = await readable(file);
      if (why) return [fail('broker', `mqtt.tls.${k}: ${why}`, `point mqtt.tls.${k} at a readable PEM file`)];
    }
    Object.assign(options, {
      ca: m.tls.ca ? readFileSync(m.tls.ca) : undefined,
      cert: m.tls.cert ? readFileSync(m.tls.cert) : undefined,
      key: m.tls.key ? readFileSync(m.tls.key) : undefined,
      rejectUnauthorized: m.tls.rejectUnauthorized,
    });
  }
  const started = Date.now();
  let client: MqttClient | undefined;
  try {
    client = await new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(url, options);
      client = c;
      const timer = setTimeout(() => reject(Object.assign(new Error('no CONNACK within 6 s'), { code: 'ETIMEDOUT' })), 6000);
      c.once('connect', () => {
        clearTimeout(timer);
        resolve(c);
      });
      c.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      c.once('close', () => {
        clearTimeout(timer);
        reject(Object.assign(new Error('the connection was closed before the broker answered (a TLS listener reached with mqtt://?)'), { code: 'ECONNRESET' }));
      });
    });
  } catch (err) {
    client?.end(true);
    const { detail, fix } = classifyConnectError(err as Error & { code?: string | number }, url);
    return [fail('broker', `${redact(url)}: ${detail}`, fix)];
  }
  rows.push(pass('broker', `connected to ${redact(url)} in ${Date.now() - started} ms${m.username ? ` as ${m.username}` : ''}${m.tls ? ' over TLS' : ''}`));

  const topics = new Topics(config.moduleId, m.externalPrefix);
  const topic = topics.e2m('heartbeat');
  try {
    const seen = await new Promise<{ value: string; after: number } | undefined>((resolve) => {
      const t0 = Date.now();
      const timer = setTimeout(() => resolve(undefined), heartbeatWaitMs);
      client!.on('message', (t, payload) => {
        if (t !== topic) return;
        clearTimeout(timer);
        resolve({ value: payload.toString(), after: Date.now() - t0 });
      });
      client!.subscribe(topic, { qos: 0 }, (err) => {
        if (err) {
          clearTimeout(timer);
          resolve(undefined);
        }
      });
    });
    rows.push(seen
      ? pass('EVerest heartbeat', `${topic} = ${seen.value} after ${seen.after} ms`)
      : warn('EVerest heartbeat', `nothing on ${topic} within ${heartbeatWaitMs / 1000} s`,
        'fine while EVerest is not running; otherwise check that its system_API module id is "' + config.moduleId + '" and mqtt_external_prefix is "' + m.externalPrefix + '"'));
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
  return rows;
}
