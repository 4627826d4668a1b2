import type { PluginClass } from '../core/api.js';

/**
 * Built-in plugins, loaded lazily by name. The order here is the start order when
 * `plugins` is absent from the config.
 */
export const BUILTIN_PLUGINS: Record<string, () => Promise<{ default: PluginClass }>> = {
  'firmware-update': () => import('./firmware-update/index.js'),
  'reset': () => import('./reset/index.js'),
  'system-time': () => import('./system-time/index.js'),
  'boot-reason': () => import('./boot-reason/index.js'),
  'log-upload': () => import('./log-upload/index.js'),
};
