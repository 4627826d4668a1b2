/**
 * The config schema, the options schemas of every built-in plugin and adapter and the system_API
 * messages are compiled ahead of time (deploy/generate-validators.ts), without a meta-schema check
 * at run time: this test is that check, and fails when the generated validators are out of date.
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { BUILTIN_ADAPTERS } from '../../adapters/index.js';
import { REPO_ROOT } from '../helpers/daemon.js';
import { builtInSchemas, messageValidatorsSource, optionsValidatorsSource } from '../../deploy/generate-validators.js';
import { builtInValidator } from '../../core/config.js';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const valid = (schema: unknown): string | undefined => (ajv.validateSchema(schema as object) ? undefined : ajv.errorsText(ajv.errors));

describe('built-in schemas are valid JSON Schema', () => {
  it('config.schema.json', () => {
    expect(valid(JSON.parse(readFileSync(path.join(REPO_ROOT, 'core/config.schema.json'), 'utf8')))).toBeUndefined();
  });

  it('every built-in plugin and adapter options schema', async () => {
    const schemas = (await builtInSchemas()).filter(([name]) => name !== 'config');
    expect(schemas.length).toBeGreaterThan(10);
    const invalid = schemas.filter(([, s]) => valid(s) !== undefined).map(([n, s]) => `${n}: ${valid(s)}`);
    expect(invalid).toEqual([]);
  });
});

describe('validators compiled ahead of time', () => {
  it('are those the schemas give today (else: npm run generate)', async () => {
    const dir = path.join(REPO_ROOT, 'core', 'generated');
    expect(readFileSync(path.join(dir, 'message-validators.ts'), 'utf8') === messageValidatorsSource(), 'core/generated/message-validators.ts is out of date: npm run generate').toBe(true);
    expect(readFileSync(path.join(dir, 'options-validators.ts'), 'utf8') === (await optionsValidatorsSource()), 'core/generated/options-validators.ts is out of date: npm run generate').toBe(true);
  });

  it('exist for every built-in schema, apply defaults and report errors as before', async () => {
    for (const [name, s] of await builtInSchemas()) expect(builtInValidator(s), name).toBeTypeOf('function');
    const rauc = (await BUILTIN_ADAPTERS.installer.rauc!()).default.optionsSchema!;
    const validate = builtInValidator(rauc)!;
    const value: Record<string, unknown> = {};
    expect(validate(value)).toBe(true);
    expect(Object.keys(value).length).toBeGreaterThan(0); // defaults filled in
    expect(validate({ healthCheckTimeoutS: 'soon', healthCheck: [] })).toBe(false);
    expect(validate.errors?.map((e) => `${e.instancePath} ${e.keyword}`)).toEqual(['/healthCheck minItems', '/healthCheckTimeoutS type']);
  });
});
