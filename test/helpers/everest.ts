/**
 * EVerest's side of the wire for tests: the same client `everest-system probe` uses
 * (core/everestSide.ts), registered for cleanup at the end of the test.
 *
 *   const ev = await EverestSim.connect(broker.url, { moduleId: 'system_api' });
 *   ev.startHeartbeat(100);
 *   expect(await ev.request('get_boot_reason')).toBe('PowerUp');
 */
import { onTestFinished } from 'vitest';
import { EverestSide, type EverestSideOptions } from '../../core/everestSide.js';

export class EverestSim {
  static async connect(url: string, options: EverestSideOptions = {}): Promise<EverestSide> {
    const side = await EverestSide.connect(url, options);
    try {
      onTestFinished(() => side.close());
    } catch {
      // outside a test (beforeAll): the caller closes it
    }
    return side;
  }
}

export type { EverestSide, M2eMessage } from '../../core/everestSide.js';
