import { describe, expect, it } from 'vitest';
import { createLogger } from '../../services/common/logger.ts';
import { Supervisor, type SupervisorStatus } from '../../services/common/supervisor.ts';

const logger = createLogger({ level: 'silent', name: 'supervisor-test' });

/** Resolves when `predicate` holds, checking on every state change the supervisor reports. */
function watcher() {
  const states: SupervisorStatus[] = [];
  const waiters: { predicate: () => boolean; resolve: () => void }[] = [];
  return {
    states,
    onState: (s: SupervisorStatus) => {
      states.push(s);
      for (const w of [...waiters]) if (w.predicate()) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
    },
    until: (predicate: () => boolean) => (predicate() ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ predicate, resolve }))),
  };
}

describe('Supervisor', () => {
  it('throws when the first start fails, and starts nothing more', async () => {
    let starts = 0;
    const supervisor = new Supervisor({ name: 't', logger, start: async () => { starts++; throw new Error('no broker'); } });
    await expect(supervisor.start()).rejects.toThrow('no broker');
    expect(starts).toBe(1);
    expect(supervisor.current.state).toBe('stopped');
  });

  it('replaces a failed incarnation after releasing it, and counts the restart', async () => {
    const w = watcher();
    const events: string[] = [];
    const fails: ((err: unknown) => void)[] = [];
    const supervisor = new Supervisor({
      name: 't', logger, initialBackoffMs: 1, onState: w.onState,
      start: async (fail) => {
        const n = fails.push(fail);
        events.push(`start ${n}`);
        return { stop: async () => void events.push(`stop ${n}`) };
      },
    });
    await supervisor.start();
    fails[0]!(new Error('fenced'));
    fails[0]!(new Error('reported twice')); // a second report of the same failure is ignored
    await w.until(() => supervisor.current.state === 'running' && fails.length === 2);
    expect(events).toEqual(['start 1', 'stop 1', 'start 2']);
    expect(supervisor.current).toMatchObject({ restarts: 1, lastError: 'fenced' });
    expect(w.states.map((s) => s.state)).toEqual(['running', 'restarting', 'running']);
    await supervisor.stop();
    expect(events).toEqual(['start 1', 'stop 1', 'start 2', 'stop 2']);
    expect(supervisor.current.state).toBe('stopped');
  });

  it('keeps trying with growing backoff while restarts fail, then recovers', async () => {
    const w = watcher();
    const startedAt: number[] = [];
    let firstFail: (err: unknown) => void = () => {};
    const supervisor = new Supervisor({
      name: 't', logger, initialBackoffMs: 20, maxBackoffMs: 80, onState: w.onState,
      start: async (fail) => {
        startedAt.push(Date.now());
        if (startedAt.length === 1) {
          firstFail = fail;
          return { stop: async () => {} };
        }
        if (startedAt.length < 5) throw new Error(`attempt ${startedAt.length} failed`);
        return { stop: async () => {} };
      },
    });
    await supervisor.start();
    firstFail(new Error('crashed'));
    await w.until(() => supervisor.current.state === 'running' && startedAt.length === 5);
    const gaps = startedAt.slice(1).map((t, i) => t - startedAt[i]!);
    // 20, 40, 80, 80 ms (±20 % jitter, plus timer slack): growing, then capped.
    expect(gaps[1]!).toBeGreaterThanOrEqual(30);
    expect(gaps[3]!).toBeGreaterThanOrEqual(60);
    expect(supervisor.current.restarts).toBe(4);
    expect(supervisor.current.lastError).toBe('attempt 4 failed');
    await supervisor.stop();
  });

  it('abandons an incarnation that does not release in time and starts the next one', async () => {
    const w = watcher();
    let fail: (err: unknown) => void = () => {};
    let starts = 0;
    const supervisor = new Supervisor({
      name: 't', logger, initialBackoffMs: 1, stopTimeoutMs: 50, onState: w.onState,
      start: async (f) => {
        starts++;
        fail = f;
        return { stop: () => new Promise<void>(() => {}) }; // hangs, like a disconnect from a dead broker
      },
    });
    await supervisor.start();
    fail(new Error('stuck'));
    await w.until(() => starts === 2 && supervisor.current.state === 'running');
    supervisor.restart('watchdog: no progress');
    await w.until(() => starts === 3 && supervisor.current.state === 'running');
    expect(supervisor.current.lastError).toBe('watchdog: no progress');
    await supervisor.stop();
  });

  it('stops during a backoff without starting again', async () => {
    const w = watcher();
    let fail: (err: unknown) => void = () => {};
    let starts = 0;
    const supervisor = new Supervisor({ name: 't', logger, initialBackoffMs: 60_000, onState: w.onState, start: async (f) => { starts++; fail = f; return { stop: async () => {} }; } });
    await supervisor.start();
    fail(new Error('gone'));
    await w.until(() => supervisor.current.state === 'restarting');
    await supervisor.stop();
    expect(starts).toBe(1);
    expect(supervisor.current.state).toBe('stopped');
  });
});
