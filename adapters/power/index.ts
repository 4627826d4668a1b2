import type { AdapterModule } from '../../core/api.js';

/** Built-in adapters of the `power` slot, by config `type`, loaded lazily. */
export const POWER_ADAPTERS: Record<string, () => Promise<{ default: AdapterModule<'power'> }>> = {
  systemd: () => import('./systemd.js'),
  command: () => import('./command.js'),
  simulated: () => import('./simulated.js'),
};
