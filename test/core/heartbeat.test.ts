import { describe, expect, test, vi } from 'vitest';
import { HeartbeatMonitor, parseHeartbeat, U64_MAX } from '../../core/heartbeat.js';
import { memoryLogger } from '../helpers/daemon.js';

describe('heartbeat counter parsing', () => {
  test('exact above 2^53 and up to 2^64-1', () => {
    expect(parseHeartbeat('9007199254740993')).toBe(9007199254740993n); // 2^53 + 1, lost by JSON.parse
    expect(parseHeartbeat('18446744073709551615')).toBe(U64_MAX);
    expect(parseHeartbeat(' 42 \n')).toBe(42n);
    expect(parseHeartbeat('0')).toBe(0n);
  });

  test.each(['-1', '1.5', '1e3', '"7"', '18446744073709551616', '007', '', 'null', '{}', '0x10', 'NaN'])('rejects %j', (text) => {
    expect(parseHeartbeat(text)).toBeUndefined();
  });
});

describe('EVerest state from the heartbeat', () => {
  const monitor = (timeoutMs = 1000) => new HeartbeatMonitor(timeoutMs, memoryLogger().logger);

  test('a counter that goes back is a restart; the wrap after 2^64-1 is not', () => {
    const m = monitor();
    const restarts: Array<{ previous: bigint; current: bigint }> = [];
    m.on('restart', (r) => restarts.push(r));
    m.onHeartbeat((U64_MAX - 1n).toString());
    m.onHeartbeat(U64_MAX.toString());
    m.onHeartbeat('0');
    m.onHeartbeat('1');
    expect(restarts).toEqual([]);
    m.onHeartbeat('0');
    expect(restarts).toEqual([{ previous: 1n, current: 0n }]);
    expect(m.restarts).toBe(1);
    expect(m.state).toBe('alive');
    m.stop();
  });

  test('lost after the timeout without heartbeat, back when it resumes', () => {
    vi.useFakeTimers();
    try {
      const m = monitor(500);
      const events: string[] = [];
      m.on('lost', () => events.push('lost'));
      m.on('back', () => events.push('back'));
      expect(m.state).toBe('unknown');
      m.onHeartbeat('10');
      expect(m.state).toBe('alive');
      vi.advanceTimersByTime(400);
      m.onHeartbeat('11');
      vi.advanceTimersByTime(400);
      expect(m.state).toBe('alive');
      vi.advanceTimersByTime(200);
      expect(m.state).toBe('lost');
      m.onHeartbeat('12');
      expect(m.state).toBe('alive');
      expect(events).toEqual(['lost', 'back']);
      m.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  test('a listener that throws does not break the monitor', () => {
    const m = monitor();
    m.on('restart', () => {
      throw new Error('boom');
    });
    m.onHeartbeat('5');
    expect(() => m.onHeartbeat('0')).not.toThrow();
    expect(m.restarts).toBe(1);
    m.stop();
  });
});
