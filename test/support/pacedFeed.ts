import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Simulated traffic for fault tests: items 0..total-1 are written in order, either at once
 * (`sendUpTo`) or in the background as a wave of `wave` items every `intervalMs`
 * (`flowUpTo`). The pacing is on purpose (records keep arriving while services are killed
 * or rebalanced), but how far the flow may go is set by the test: a test that needs work
 * left for its next phase raises the limit phase by phase instead of hoping the stream is
 * still running by then.
 */
export interface PacedFeed {
  /** Items written so far. */
  sent(): number;
  /** Writes every item below `to` now (after whatever is being written). */
  sendUpTo(to: number): Promise<void>;
  /** Lets the background flow go on up to `to` (a lower value than before changes nothing). */
  flowUpTo(to: number): void;
  /** Resolves once the flow has reached its current limit; rejects if a write failed. */
  flowed(): Promise<void>;
  /** Resolves once every item is written (the test has let the flow go to the end); rejects if a write failed. */
  finished(): Promise<void>;
}

export function pacedFeed(options: { total: number; wave: number; intervalMs: number; write: (from: number, to: number) => Promise<void> }): PacedFeed {
  let sent = 0;
  let limit = 0;
  let writes = Promise.resolve();
  let flow: Promise<void> | undefined;
  let failure: unknown;
  let finish!: { ok: () => void; fail: (err: unknown) => void };
  const finished = new Promise<void>((ok, fail) => (finish = { ok, fail }));
  finished.catch(() => {});

  const sendUpTo = (to: number): Promise<void> => {
    const next = writes.then(async () => {
      const end = Math.min(options.total, to);
      if (end <= sent) return;
      await options.write(sent, end);
      sent = end;
      if (sent === options.total) finish.ok();
    });
    writes = next.catch((err: unknown) => {
      failure ??= err;
      finish.fail(err);
    });
    return next;
  };

  const run = async (): Promise<void> => {
    await null; // let flowUpTo() store this promise in `flow` before it may be cleared below
    for (;;) {
      // Checked and cleared in one synchronous step, so a flowUpTo() in between is never lost.
      if (sent >= limit || failure !== undefined) {
        flow = undefined;
        return;
      }
      await sleep(options.intervalMs);
      await sendUpTo(Math.min(limit, sent + options.wave)).catch(() => {});
    }
  };

  return {
    sent: () => sent,
    sendUpTo,
    flowUpTo: (to) => {
      limit = Math.max(limit, Math.min(options.total, to));
      flow ??= run();
    },
    flowed: async () => {
      while (flow) await flow;
      await writes;
      if (failure !== undefined) throw failure;
    },
    finished: () => finished,
  };
}
