/**
 * The config schema and the options schemas of every built-in plugin and adapter are compiled at
 * start-up without a meta-schema check (core/config.ts, compileTrustedSchema): this test is that check.
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { BUILTIN_ADAPTERS } from '../../adapters/index.js';
import { BUILTIN_PLUGINS } from '../../plugins/index.js';
import { REPO_ROOT } from '../helpers/daemon.js';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const valid = (schema: unknown): string | undefined => (ajv.validateSchema(schema as object) ? undefined : ajv.errorsText(ajv.errors));

describe('built-in schemas are valid JSON Schema', () => {
  it('config.schema.json', () => {
    expect(valid(JSON.parse(readFileSync(path.join(REPO_ROOT, 'core/config.schema.json'), 'utf8')))).toBeUndefined();
  });

  it('every built-in plugin and adapter options schema', async () => {
    const schemas: [string, unknown][] = [];
    for (const [name, load] of Object.entries(BUILTIN_PLUGINS)) schemas.push([`plugin ${name}`, (await load()).default.optionsSchema]);
    for (const [slot, byType] of Object.entries(BUILTIN_ADAPTERS)) {
      for (const [type, load] of Object.entries(byType as Record<string, () => Promise<{ default: { optionsSchema?: unknown } }>>)) {
        schemas.push([`${slot} ${type}`, (await load()).default.optionsSchema]);
      }
    }
    expect(schemas.length).toBeGreaterThan(10);
    const invalid = schemas.filter(([, s]) => s !== undefined && valid(s) !== undefined).map(([n, s]) => `${n}: ${valid(s)}`);
    expect(invalid).toEqual([]);
  });
});
