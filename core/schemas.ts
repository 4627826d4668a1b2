/**
 * Validators for every message of the system_API, compiled ahead of time from the AsyncAPI file
 * itself (spec/system_API.yaml, by deploy/generate-validators.ts), so the schemas are never
 * written twice and neither a YAML parser nor a schema compiler runs at start-up.
 */
import type { ErrorObject } from 'ajv';
import type { Operation, StatusTopic } from './api.js';
import type { ValidateFunction } from './config.js';
import { MESSAGE_VALIDATORS } from './generated/message-validators.js';
import { INBOUND_MESSAGE, REPLY_MESSAGE, STATUS_MESSAGE } from './specMessages.js';

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
  readonly #validators: Record<string, ValidateFunction>;

  constructor(validators: Record<string, ValidateFunction> = MESSAGE_VALIDATORS as Record<string, ValidateFunction>) {
    this.#validators = validators;
  }

  #check(message: string | undefined, value: unknown, missing: string): string | undefined {
    if (message === undefined) return missing;
    const fn = this.#validators[message];
    if (!fn) return `no validator for ${message}`;
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
/** The validators of the spec shipped with the daemon. */
export function systemApiSchemas(): SystemApiSchemas {
  shared ??= new SystemApiSchemas();
  return shared;
}
