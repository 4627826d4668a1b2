import type { AdapterModule } from '../../core/api.js';

/** Built-in adapters of the `installer` slot, by config `type`, loaded lazily. */
export const INSTALLERS: Record<string, () => Promise<{ default: AdapterModule<'installer'> }>> = {
  'rauc': () => import('./rauc.js'),
  'script': () => import('./script.js'),
  'simulated': () => import('./simulated.js'),
  'swupdate': () => import('./swupdate.js'),
};
