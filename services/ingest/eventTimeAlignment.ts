/**
 * Reads the raw inputs in event-time order, the way Kafka Streams synchronizes the partitions
 * of a task by their head record's timestamp, waiting a bounded time for a slower one.
 *
 * Every partition of exp.events receives events from every raw partition of both raw topics
 * (they are keyed by user), so the order that matters spans all the raw partitions this
 * instance reads. A batch of one raw partition is taken up to the first record whose event
 * time is more than `slackMs` ahead of the earliest head among the other raw partitions that
 * have records waiting (the head: the event time of a partition's next record, as last seen;
 * before any is seen, unknown, which holds the others back). The rest is left to be fetched
 * again. A partition held back entirely for `maxWaitMs` of wall-clock time is taken anyway, so
 * a stalled or idle input delays the others by at most that much: after that the aggregator's
 * lateness is what covers the disorder.
 *
 * An instance aligns only the partitions it owns: with several ingest instances, inputs can
 * still drift apart across instances (the aggregator's watermark covers that up to its lateness).
 */
export interface AlignmentOptions {
  slackMs: number;
  maxWaitMs: number;
}

export class EventTimeAlignment {
  /** Event time of each raw partition's next record, as last seen (or its newest taken, once all were). */
  private readonly heads = new Map<string, number>();
  private readonly lags = new Map<string, number>();
  private readonly heldSince = new Map<string, number>();

  constructor(private readonly options: AlignmentOptions) {}

  /**
   * The raw partitions this instance now reads: until their lag is known, each is taken to
   * have records waiting (so the first batches of a backlog wait for each other's heads).
   */
  assigned(keys: string[]): void {
    const now = new Set(keys);
    for (const key of [...this.lags.keys()]) if (!now.has(key)) this.noteLag(key, undefined);
    for (const key of keys) if (!this.lags.has(key)) this.lags.set(key, Number.POSITIVE_INFINITY);
  }

  /** What the loop says of a partition's lag (undefined: the partition went away). */
  noteLag(key: string, lag: number | undefined): void {
    if (lag === undefined) {
      this.lags.delete(key);
      this.heads.delete(key);
      this.heldSince.delete(key);
    } else this.lags.set(key, lag);
  }

  /**
   * How many of a batch's records to take now, given their event times in offset order
   * (undefined for a record that does not decode: it goes with its neighbours).
   */
  take(key: string, eventTimes: (number | undefined)[], now: number): number {
    const firstTime = eventTimes.find((t) => t !== undefined);
    if (firstTime !== undefined) this.heads.set(key, firstTime);
    let bound = Number.POSITIVE_INFINITY;
    for (const [other, lag] of this.lags) {
      if (other === key || lag <= 0) continue;
      bound = Math.min(bound, (this.heads.get(other) ?? Number.NEGATIVE_INFINITY) + this.options.slackMs);
    }
    let taken = 0;
    while (taken < eventTimes.length && (eventTimes[taken] ?? Number.NEGATIVE_INFINITY) <= bound) taken++;
    if (taken === 0) {
      const since = this.heldSince.get(key) ?? now;
      this.heldSince.set(key, since);
      // Waited long enough for the others: take it all.
      if (now - since < this.options.maxWaitMs) return 0;
      taken = eventTimes.length;
    }
    this.heldSince.delete(key);
    const next = eventTimes.slice(taken).find((t) => t !== undefined) ?? eventTimes.slice(0, taken).reduce<number | undefined>((a, t) => (t === undefined ? a : Math.max(a ?? t, t)), undefined);
    if (next !== undefined) this.heads.set(key, next);
    return taken;
  }
}
