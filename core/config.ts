/**
 * plugins.config.json: read, validated against core/config.schema.json (defaults applied),
 * paths resolved against the file's folder, then frozen. Invalid config never starts the daemon.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Ajv, ErrorObject } from 'ajv';
import { SystemClientError } from './errors.js';

import { assetPath } from './assets.js';
import { OPTIONS_VALIDATORS } from './generated/options-validators.js';
import { schemaKey } from './schemaKey.js';

const schema = JSON.parse(readFileSync(assetPath('core/config.schema.json'), 'utf8')) as Record<string, unknown>;

export interface AdapterConfig {
  type: string;
  module?: string;
  [option: string]: unknown;
}

export interface PluginConfig {
  name: string;
  module?: string;
  options: Record<string, unknown>;
  enabled: boolean;
}

export interface Config {
  version: 1;
  moduleId: string;
  stateDir: string;
  mqtt: {
    url: string;
    externalPrefix: string;
    username?: string;
    password?: string;
    clientId?: string;
    keepaliveS: number;
    reconnectPeriodMs: number;
    tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean };
    embeddedBroker?: { host: string; port: number; demo: boolean };
  };
  heartbeat: { timeoutMs: number };
  communicationCheck: { intervalMs: number };
  requestTimeoutMs: number;
  committedTimeoutMs: number;
  maxPayloadBytes: number;
  shutdownTimeoutMs: number;
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'; pretty: boolean };
  adapters: { installer?: AdapterConfig; power?: AdapterConfig; clock?: AdapterConfig; logSources?: AdapterConfig[] };
  /** undefined: every built-in plugin */
  plugins?: PluginConfig[];
  /** folder of the config file; relative paths in plugin/adapter options resolve against it */
  baseDir: string;
}

/** Input shape: every defaulted key optional. */
export type ConfigInput = Record<string, unknown>;

export type ValidateFunction = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

const precompiled = OPTIONS_VALIDATORS as Record<string, ValidateFunction>;

/**
 * The validator of a schema that ships with the daemon (the config schema, built-in plugins' and
 * adapters' options), compiled ahead of time by deploy/generate-validators.ts: no schema compiler
 * runs at start-up. Undefined for a schema that was not compiled ahead of time.
 */
export function builtInValidator(s: object): ValidateFunction | undefined {
  return precompiled[schemaKey(s)];
}

let runtimeAjv: Promise<Ajv> | undefined;
/**
 * Compiles a schema at run time (third-party plugins and adapters), with the same settings as
 * the ahead-of-time validators; ajv is loaded on the first such schema.
 */
export async function compileSchema(s: object): Promise<ValidateFunction> {
  runtimeAjv ??= import('ajv').then(({ Ajv }) => new Ajv({ allErrors: true, useDefaults: true, strict: false }));
  return (await runtimeAjv).compile(s) as ValidateFunction;
}

const validate = (() => {
  const fn = builtInValidator(schema);
  if (!fn) throw new Error('core/config.schema.json changed since the validators were generated: run npm run generate');
  return fn;
})();

export function formatAjvErrors(errors: ErrorObject[] | null | undefined, base = ''): string[] {
  return (errors ?? []).map((e) => {
    const where = `${base}${e.instancePath}` || '/';
    switch (e.keyword) {
      case 'additionalProperties':
        return `${where}: unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
      case 'enum':
        return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
      case 'required':
        return `${where}: missing required key "${(e.params as { missingProperty: string }).missingProperty}"`;
      default:
        return `${where}: ${e.message}`;
    }
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates a config object; relative paths resolve against `baseDir`. Throws CONFIG_INVALID listing every problem. */
export function resolveConfig(input: ConfigInput, baseDir: string, source = 'config'): Config {
  const raw = structuredClone(input);
  if (!validate(raw)) {
    // oneOf failures repeat per branch; keep unique lines
    const lines = [...new Set(formatAjvErrors(validate.errors))];
    throw new SystemClientError('CONFIG_INVALID', `${source} is invalid:`, lines);
  }
  const cfg = raw as unknown as Omit<Config, 'plugins' | 'baseDir'> & { plugins?: (string | PluginConfig)[] };
  const plugins = cfg.plugins?.map((p) =>
    typeof p === 'string' ? { name: p, options: {}, enabled: true } : { ...p, options: p.options ?? {}, enabled: p.enabled ?? true },
  );
  const names = new Set<string>();
  const problems: string[] = [];
  plugins?.forEach((p, i) => {
    if (names.has(p.name)) problems.push(`/plugins/${i}: plugin "${p.name}" is listed twice`);
    names.add(p.name);
  });
  if (problems.length) throw new SystemClientError('CONFIG_INVALID', `${source} is invalid:`, problems);
  const config: Config = {
    ...(cfg as Omit<Config, 'plugins' | 'baseDir'>),
    stateDir: path.resolve(baseDir, cfg.stateDir),
    plugins,
    baseDir,
  };
  if (config.mqtt.tls) {
    for (const k of ['ca', 'cert', 'key'] as const) {
      const v = config.mqtt.tls[k];
      if (v) config.mqtt.tls[k] = path.resolve(baseDir, v);
    }
  }
  return deepFreeze(config);
}

/** Reads and validates a config file. */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SystemClientError('CONFIG_UNREADABLE', `cannot read config ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SystemClientError('CONFIG_INVALID', `${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SystemClientError('CONFIG_INVALID', `${file} must contain a JSON object`);
  }
  return resolveConfig(parsed as ConfigInput, path.dirname(path.resolve(file)), file);
}

export const CONFIG_SCHEMA = schema;
