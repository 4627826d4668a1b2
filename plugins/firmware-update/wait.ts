/** Timer helpers that never reject and never hold the event loop beyond an abort. */

/** setTimeout cannot wait longer than this; longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Resolves after `ms` or as soon as `signal` aborts. */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    let timer: NodeJS.Timeout;
    const end = Date.now() + Math.max(0, ms);
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const arm = () => {
      const left = end - Date.now();
      if (left <= 0) return done();
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    signal.addEventListener('abort', done, { once: true });
    arm();
  });
}

/** A wake-up call: `wait()` resolves at the next `notify()`. */
export class Wakeup {
  private waiters: (() => void)[] = [];
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** Wait until `at` (epoch ms; undefined = forever), a wake-up, or an abort, whichever comes first. */
export async function waitUntil(at: number | undefined, signal: AbortSignal, wake: Wakeup): Promise<void> {
  const inner = new AbortController();
  const both = AbortSignal.any([signal, inner.signal]);
  const timers: Promise<void>[] = [wake.wait()];
  if (at !== undefined) timers.push(delay(at - Date.now(), both));
  else timers.push(new Promise<void>((r) => both.addEventListener('abort', () => r(), { once: true })));
  await Promise.race(timers);
  inner.abort();
}
