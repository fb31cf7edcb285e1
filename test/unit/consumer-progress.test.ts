import { describe, expect, it } from 'vitest';
import { ConsumerProgress } from '../../services/common/consumerProgress.ts';

const p0 = { topic: 't', partition: 0 };
const p1 = { topic: 't', partition: 1 };
const bounds = (entries: [number, number, number][]) => new Map(entries.map(([partition, start, end]) => [`t:${partition}`, { start: BigInt(start), end: BigInt(end) }]));

describe('ConsumerProgress', () => {
  it('reports lag from the position against the end, and zero once the markers are passed', () => {
    const reported: [number, number | undefined][] = [];
    const progress = new ConsumerProgress((key, lag) => reported.push([key.partition, lag]));
    progress.assign([p0], 0);
    progress.advanced(p0, 100n, 120n, 10);
    expect(progress.totalLag()).toBe(20);
    // The fetch's last records were a commit marker: the position moves past it.
    progress.advanced(p0, 121n, 121n, 20);
    expect(progress.totalLag()).toBe(0);
    expect(reported).toEqual([[0, 20], [0, 0]]);
  });

  it('keeps the lag true from the broker side when the loop is not moving', () => {
    const progress = new ConsumerProgress();
    progress.assign([p0, p1], 0);
    // Never committed: read from the partition's start.
    progress.observed(bounds([[0, 5, 50], [1, 0, 0]]), new Map([['t:1', 0n]]));
    expect(progress.totalLag()).toBe(45);
    progress.observed(bounds([[0, 5, 80], [1, 0, 0]]), new Map());
    expect(progress.totalLag()).toBe(75);
    // A committed offset behind what the loop already reported does not move it back.
    progress.advanced(p0, 70n, 80n, 1);
    progress.observed(bounds([[0, 5, 80], [1, 0, 0]]), new Map([['t:0', 60n]]));
    expect(progress.totalLag()).toBe(10);
  });

  it('calls a partition stalled only when records wait and its position has not moved for the stall time', () => {
    const progress = new ConsumerProgress();
    progress.assign([p0, p1], 0);
    progress.observed(bounds([[0, 0, 10], [1, 0, 0]]), new Map(), 0);
    expect(progress.stalled(1_000, 999)).toEqual([]);
    expect(progress.stalled(1_000, 1_000)).toEqual([{ topic: 't', partition: 0, lag: 10, stalledMs: 1_000 }]);
    progress.advanced(p0, 5n, 10n, 1_500);
    expect(progress.stalled(1_000, 2_000)).toEqual([]);
    expect(progress.stalled(1_000, 2_500)).toHaveLength(1);
    progress.advanced(p0, 10n, 10n, 2_600);
    expect(progress.stalled(1_000, 10_000), 'caught up: nothing waits').toEqual([]);
  });

  it('keeps the stall clock of partitions a restarted consumer is given again, and forgets partitions it lost', () => {
    const reported: [number, number | undefined][] = [];
    const progress = new ConsumerProgress((key, lag) => reported.push([key.partition, lag]));
    progress.assign([p0, p1], 0);
    progress.observed(bounds([[0, 0, 10], [1, 0, 3]]), new Map(), 0);
    // A crash loop: rejoins every second, never moves.
    for (let t = 1_000; t <= 5_000; t += 1_000) progress.assign([p0, p1], t);
    expect(progress.stalled(5_000, 5_000).map((s) => s.partition)).toEqual([0, 1]);
    progress.assign([p0], 6_000);
    expect(progress.assigned()).toEqual([p0]);
    expect(reported.at(-1)).toEqual([1, undefined]);
  });

  it('starts the stall clock of an idle, caught-up partition when records arrive, not when it last moved', () => {
    const progress = new ConsumerProgress();
    progress.assign([p0], 0);
    progress.advanced(p0, 10n, 10n, 1_000);
    // Idle for 200 s, then two records arrive (seen by the broker-side check).
    progress.observed(bounds([[0, 0, 12]]), new Map([['t:0', 10n]]), 201_000);
    expect(progress.stalled(30_000, 201_000)).toEqual([]);
    expect(progress.stalled(30_000, 231_000)).toEqual([{ topic: 't', partition: 0, lag: 2, stalledMs: 30_000 }]);
  });
});
