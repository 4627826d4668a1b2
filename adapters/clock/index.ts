import type { AdapterModule } from '../../core/api.js';

/** Built-in adapters of the `clock` slot, by config `type`, loaded lazily. */
export const CLOCK_ADAPTERS: Record<string, () => Promise<{ default: AdapterModule<'clock'> }>> = {
  timedatectl: () => import('./timedatectl.js'),
  date: () => import('./date.js'),
  command: () => import('./command.js'),
  simulated: () => import('./simulated.js'),
};
