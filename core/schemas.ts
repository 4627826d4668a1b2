/**
 * Validators for every message of the system_API, compiled from the AsyncAPI file itself
 * (spec/system_API.yaml), so the schemas are never written twice.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import type { Operation, StatusTopic } from './api.js';
import { assetPath } from './assets.js';

// ajv-formats is CommonJS with a default export
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

export const SPEC_PATH = assetPath('spec/system_API.yaml');

interface AsyncApiDoc {
  components: { messages: Record<string, { payload?: unknown }>; schemas: Record<string, unknown> };
}

/** Message names in the AsyncAPI file for each inbound operation and each outbound message. */
const INBOUND_MESSAGE: Record<Operation, string> = {
  update_firmware: 'receive_request_update_firmware',
  upload_logs: 'receive_request_upload_logs',
  is_reset_allowed: 'receive_request_is_reset_allowed',
  set_system_time: 'receive_request_set_system_time',
  get_boot_reason: 'receive_request_get_boot_reason',
  allow_firmware_installation: 'receive_allow_firmware_installation',
  reset: 'receive_reset',
};
const REPLY_MESSAGE: Record<string, string> = {
  update_firmware: 'send_reply_update_firmware',
  upload_logs: 'send_reply_upload_logs',
  is_reset_allowed: 'send_reply_is_reset_allowed',
  set_system_time: 'send_reply_set_system_time',
  get_boot_reason: 'send_reply_get_boot_reason',
};
const STATUS_MESSAGE: Record<StatusTopic | 'communication_check', string> = {
  firmware_update_status: 'send_firmware_update_status',
  log_status: 'send_log_status',
  communication_check: 'send_communication_check',
};

export type Validator = (value: unknown) => string | undefined;

function describe(errors: ErrorObject[] | null | undefined): string {
  if (!errors?.length) return 'invalid';
  return errors
    .map((e) => {
      const where = e.instancePath || '(root)';
      if (e.keyword === 'enum') return `${where} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
      return `${where} ${e.message}`;
    })
    .join('; ');
}

export class SystemApiSchemas {
  readonly #ajv: Ajv;
  readonly #messages: Record<string, { payload?: unknown }>;
  /** compiled validators by message name, each compiled on its first use */
  readonly #compiled = new Map<string, ValidateFunction>();

  constructor(specText: string = readFileSync(SPEC_PATH, 'utf8')) {
    const doc = parseYaml(specText) as AsyncApiDoc;
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    // Only the parts that are JSON Schema, under their original JSON pointers so $refs resolve.
    const root = {
      $id: 'system_API',
      components: {
        schemas: doc.components.schemas,
        messages: Object.fromEntries(
          Object.entries(doc.components.messages).map(([name, m]) => [name, { payload: m.payload ?? {} }]),
        ),
      },
    };
    ajv.addSchema(root);
    this.#ajv = ajv;
    this.#messages = doc.components.messages;
    // every message the daemon uses must be in the spec (checked now; compiled on first use)
    for (const message of [...Object.values(INBOUND_MESSAGE), ...Object.values(REPLY_MESSAGE), ...Object.values(STATUS_MESSAGE)]) {
      if (!this.#messages[message]) throw new Error(`system_API spec has no message ${message}`);
    }
  }

  #validator(message: string): ValidateFunction {
    let fn = this.#compiled.get(message);
    if (!fn) {
      fn = this.#ajv.getSchema(`system_API#/components/messages/${message}/payload`);
      if (!fn) throw new Error(`cannot compile schema of ${message}`);
      this.#compiled.set(message, fn);
    }
    return fn;
  }

  #check(message: string | undefined, value: unknown, missing: string): string | undefined {
    if (message === undefined) return missing;
    const fn = this.#validator(message);
    return fn(value) ? undefined : describe(fn.errors);
  }

  /** Validates an inbound message (envelope included for requests); returns a reason or undefined. */
  inbound(op: Operation, value: unknown): string | undefined {
    return this.#check(Object.hasOwn(INBOUND_MESSAGE, op) ? INBOUND_MESSAGE[op] : undefined, value, `unknown operation ${op}`);
  }

  reply(op: string, value: unknown): string | undefined {
    return this.#check(Object.hasOwn(REPLY_MESSAGE, op) ? REPLY_MESSAGE[op] : undefined, value, `no reply schema for ${op}`);
  }

  status(topic: string, value: unknown): string | undefined {
    return this.#check(Object.hasOwn(STATUS_MESSAGE, topic) ? STATUS_MESSAGE[topic as StatusTopic] : undefined, value, `no schema for m2e/${topic}`);
  }
}

let shared: SystemApiSchemas | undefined;
/** The validators of the spec shipped with the daemon, compiled once per process. */
export function systemApiSchemas(): SystemApiSchemas {
  shared ??= new SystemApiSchemas();
  return shared;
}
