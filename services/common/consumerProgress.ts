/**
 * What a consumer has done with each partition it owns: its position (the next offset it
 * will read, past any transaction markers it has seen), the partition's end as last seen,
 * the lag between the two, and when the position last moved. The loop reports positions
 * after every committed batch (and after batches that held only markers or aborted records);
 * the lag monitor reports the partitions' ends and committed offsets from the broker every
 * few seconds, so the lag stays true even when the loop itself has stopped moving.
 */
export interface PartitionKey {
  topic: string;
  partition: number;
}

interface PartitionProgress extends PartitionKey {
  position?: bigint;
  end?: bigint;
  lag?: number;
  lastAdvanceAt: number;
}

export interface StalledPartition extends PartitionKey {
  lag: number;
  stalledMs: number;
}

export type LagListener = (key: PartitionKey, lag: number | undefined) => void;

export class ConsumerProgress {
  private readonly partitions = new Map<string, PartitionProgress>();

  constructor(private readonly onLag: LagListener = () => {}) {}

  /**
   * The group gave this consumer these partitions. Partitions it kept keep their stall clock:
   * a loop that crashes and rejoins over and over is not making progress either. Between
   * incarnations the last assignment stays, so its lag keeps being reported.
   */
  assign(keys: PartitionKey[], now = Date.now()): void {
    const next = new Set(keys.map(keyOf));
    for (const [key, p] of this.partitions) {
      if (next.has(key)) continue;
      this.partitions.delete(key);
      this.onLag(p, undefined);
    }
    for (const k of keys) if (!this.partitions.has(keyOf(k))) this.partitions.set(keyOf(k), { ...k, lastAdvanceAt: now });
  }

  /** The consumer has done everything before `position`; `end` is the partition's end as the fetch saw it. */
  advanced(key: PartitionKey, position: bigint, end: bigint | undefined, now = Date.now()): void {
    const p = this.partitions.get(keyOf(key));
    if (!p) return;
    if (p.position === undefined || position > p.position) {
      p.position = position;
      p.lastAdvanceAt = now;
    }
    if (end !== undefined && (p.end === undefined || end > p.end)) p.end = end;
    this.updateLag(p, now);
  }

  /**
   * The broker's view: each partition's start and last stable offset (its end for a
   * read_committed reader) and the group's committed offsets. A partition the group has never
   * committed is read from its start.
   */
  observed(bounds: Map<string, { start: bigint; end: bigint }>, committed: Map<string, bigint>, now = Date.now()): void {
    for (const [key, p] of this.partitions) {
      const bound = bounds.get(key);
      if (bound) p.end = bound.end;
      const done = committed.get(key) ?? bound?.start;
      if (done !== undefined && (p.position === undefined || done > p.position)) p.position = done;
      this.updateLag(p, now);
    }
  }

  assigned(): PartitionKey[] {
    return [...this.partitions.values()].map(({ topic, partition }) => ({ topic, partition }));
  }

  /** Partitions with records waiting whose position has not moved for `stallMs`. */
  stalled(stallMs: number, now = Date.now()): StalledPartition[] {
    return [...this.partitions.values()]
      .filter((p) => (p.lag ?? 0) > 0 && now - p.lastAdvanceAt >= stallMs)
      .map((p) => ({ topic: p.topic, partition: p.partition, lag: p.lag!, stalledMs: now - p.lastAdvanceAt }));
  }

  /** Records waiting on one partition; undefined until both its position and its end are known. */
  lagOf(key: PartitionKey): number | undefined {
    return this.partitions.get(keyOf(key))?.lag;
  }

  totalLag(): number {
    return [...this.partitions.values()].reduce((n, p) => n + (p.lag ?? 0), 0);
  }

  private updateLag(p: PartitionProgress, now: number): void {
    if (p.end === undefined || p.position === undefined) return;
    const lag = Math.max(0, Number(p.end - p.position));
    // Records arriving on an idle, caught-up partition start its stall clock: before they
    // came, there was nothing to make progress on.
    if (lag > 0 && !(p.lag !== undefined && p.lag > 0)) p.lastAdvanceAt = Math.max(p.lastAdvanceAt, now);
    p.lag = lag;
    this.onLag(p, p.lag);
  }
}

export function keyOf(key: PartitionKey): string {
  return `${key.topic}:${key.partition}`;
}
