/**
 * Where the probe connects: `--url`, `--username/--password`, `--ca/--tls-cert/--tls-key` or
 * `--config FILE` (the daemon's own config: url, credentials, TLS, moduleId, external prefix).
 * Options given on the command line win over the config file.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { loadConfig } from '../config.js';
import { redactUrl } from '../net/url.js';
import { EXIT, ProbeError } from './io.js';

export const DEFAULT_URL = 'mqtt://127.0.0.1:1883';
export const DEFAULT_MODULE_ID = 'system_api';

export interface BrokerCliOptions {
  url?: string;
  username?: string;
  password?: string;
  ca?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecure?: boolean;
  config?: string;
  moduleId?: string;
  prefix?: string;
  connectTimeoutS?: number;
}

export interface ResolvedBroker {
  url: string;
  /** url safe to print (no user info, no secrets) */
  shownUrl: string;
  moduleId: string;
  prefix: string;
  mqtt: IClientOptions;
  connectTimeoutMs: number;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ProbeError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function resolveBroker(opts: BrokerCliOptions): ResolvedBroker {
  let url = opts.url;
  let username = opts.username;
  let password = opts.password;
  let moduleId = opts.moduleId;
  let prefix = opts.prefix;
  let tls: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean } = {};
  if (opts.config) {
    let config;
    try {
      config = loadConfig(opts.config);
    } catch (err) {
      throw new ProbeError((err as Error).message);
    }
    const embedded = config.mqtt.embeddedBroker;
    const host = embedded && (embedded.host === '0.0.0.0' || embedded.host === '::') ? '127.0.0.1' : embedded?.host;
    url ??= embedded ? `mqtt://${host?.includes(':') ? `[${host}]` : host}:${embedded.port}` : config.mqtt.url;
    username ??= config.mqtt.username;
    password ??= config.mqtt.password;
    moduleId ??= config.moduleId;
    prefix ??= config.mqtt.externalPrefix;
    tls = { ...(config.mqtt.tls ?? {}) };
  }
  url ??= DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ProbeError(`--url ${redactUrl(url)} is not a URL (e.g. ${DEFAULT_URL})`);
  }
  if (!['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:', 'ssl:', 'tls:'].includes(parsed.protocol)) {
    throw new ProbeError(`--url ${redactUrl(url)}: unsupported scheme ${parsed.protocol} (mqtt, mqtts, ws, wss)`);
  }
  moduleId ??= DEFAULT_MODULE_ID;
  if (!/^[^/#+\s]+$/.test(moduleId)) throw new ProbeError(`--module-id "${moduleId}" cannot be part of an MQTT topic (no /, #, + or spaces)`);
  prefix ??= '';
  if (/[#+]/.test(prefix)) throw new ProbeError(`--prefix "${prefix}" cannot contain MQTT wildcards (# or +)`);
  const mqttOptions: IClientOptions = {
    clientId: `everest-system-probe-${randomBytes(4).toString('hex')}`,
    reconnectPeriod: 1000,
    connectTimeout: 5000,
    clean: true,
  };
  if (username !== undefined) mqttOptions.username = username;
  if (password !== undefined) mqttOptions.password = password;
  const ca = opts.ca ?? tls.ca;
  const cert = opts.tlsCert ?? tls.cert;
  const key = opts.tlsKey ?? tls.key;
  if (ca) mqttOptions.ca = readPem(ca, 'CA file');
  if (cert) mqttOptions.cert = readPem(cert, 'client certificate');
  if (key) mqttOptions.key = readPem(key, 'client key');
  if (Boolean(cert) !== Boolean(key)) throw new ProbeError('--tls-cert and --tls-key go together (mutual TLS needs both)');
  if (opts.insecure) mqttOptions.rejectUnauthorized = false;
  else if (tls.rejectUnauthorized === false) mqttOptions.rejectUnauthorized = false;
  const connectTimeoutMs = Math.round((opts.connectTimeoutS ?? 5) * 1000);
  mqttOptions.connectTimeout = Math.max(1000, connectTimeoutMs);
  return { url, shownUrl: redactUrl(url), moduleId, prefix, mqtt: mqttOptions, connectTimeoutMs };
}

/**
 * Connects, retrying while the broker refuses or is not there yet, for at most connectTimeoutMs.
 * Refused credentials end it at once. Throws ProbeError (exit 2) with the reason.
 */
export async function connectBroker(broker: ResolvedBroker, signal?: AbortSignal): Promise<MqttClient> {
  const client = mqtt.connect(broker.url, broker.mqtt);
  let lastError: Error | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (message: string) => {
        cleanup();
        reject(new ProbeError(message, EXIT.usage));
      };
      const onConnect = () => {
        cleanup();
        resolve();
      };
      const onError = (err: Error & { code?: unknown }) => {
        lastError = err;
        // CONNACK refusals (bad credentials, not authorised) carry a numeric code: retrying will not help
        if (typeof err.code === 'number') fail(`the MQTT broker at ${broker.shownUrl} refused the connection: ${err.message}`);
      };
      const onAbort = () => fail('interrupted while connecting');
      const timer = setTimeout(() => {
        const why = lastError ? `: ${lastError.message}` : '';
        fail(`cannot reach the MQTT broker at ${broker.shownUrl} within ${broker.connectTimeoutMs / 1000} s${why}`);
      }, broker.connectTimeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      client.on('connect', onConnect);
      client.on('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  } catch (err) {
    await client.endAsync(true).catch(() => undefined);
    throw err;
  }
  // later errors (e.g. the broker going away) are reconnected by mqtt.js; keep them from being unhandled
  client.on('error', () => undefined);
  return client;
}
