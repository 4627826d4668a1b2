import { createHash } from 'node:crypto';

/** Identifies a JSON Schema by its content, to find its validator compiled ahead of time. */
export function schemaKey(schema: object): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex').slice(0, 32);
}
