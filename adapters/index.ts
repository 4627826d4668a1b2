import type { AdapterModule, AdapterSlot } from '../core/api.js';
import { INSTALLERS } from './installer/index.js';
import { POWER_ADAPTERS } from './power/index.js';
import { CLOCK_ADAPTERS } from './clock/index.js';
import { LOG_SOURCES } from './log-source/index.js';

/** Built-in adapter modules per slot, by config `type`. */
export const BUILTIN_ADAPTERS: { [S in AdapterSlot]: Record<string, () => Promise<{ default: AdapterModule<S> }>> } = {
  installer: INSTALLERS,
  power: POWER_ADAPTERS,
  clock: CLOCK_ADAPTERS,
  logSources: LOG_SOURCES,
};
