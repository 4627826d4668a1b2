import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Root of the package, whether running from the sources (core/) or the build (dist/core/). */
export const PACKAGE_ROOT = [path.resolve(here, '..'), path.resolve(here, '../..')].find((dir) =>
  existsSync(path.join(dir, 'spec', 'system_API.yaml')),
) ?? path.resolve(here, '..');

/** Absolute path of a file shipped with the package (spec/, core/config.schema.json, ...). */
export function assetPath(relative: string): string {
  return path.join(PACKAGE_ROOT, relative);
}
