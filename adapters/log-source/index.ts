import type { AdapterModule } from '../../core/api.js';

/** Built-in adapters of the `logSources` slot, by config `type`, loaded lazily. */
export const LOG_SOURCES: Record<string, () => Promise<{ default: AdapterModule<'logSources'> }>> = {
  journald: () => import('./journald.js'),
  files: () => import('./files.js'),
  'system-snapshot': () => import('./system-snapshot.js'),
};
