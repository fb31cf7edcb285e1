/**
 * Input records an aggregator processed more than once, read off its deltas on exp.aggregates:
 * each delta names the input range (partition, first and last offset) of the batch it came
 * from, the deltas of one batch (one per experiment) all the same range. Committed batches of
 * an exactly-once run never overlap, so any overlap between distinct ranges of a partition is
 * input counted twice (a read_committed reader sees no aborted batch). Pure.
 */
export interface SourceRange {
  sourcePartition: number;
  firstOffset: number;
  lastOffset: number;
}

export function reprocessedRecords(deltas: Iterable<SourceRange>): { records: number; byPartition: Record<number, number> } {
  const ranges = new Map<number, Map<string, SourceRange>>();
  for (const d of deltas) {
    let distinct = ranges.get(d.sourcePartition);
    if (!distinct) ranges.set(d.sourcePartition, (distinct = new Map()));
    distinct.set(`${d.firstOffset}-${d.lastOffset}`, d);
  }
  const byPartition: Record<number, number> = {};
  let records = 0;
  for (const [partition, distinct] of ranges) {
    let covered = -1;
    let twice = 0;
    for (const r of [...distinct.values()].sort((a, b) => a.firstOffset - b.firstOffset || a.lastOffset - b.lastOffset)) {
      if (r.firstOffset <= covered) twice += Math.min(r.lastOffset, covered) - r.firstOffset + 1;
      covered = Math.max(covered, r.lastOffset);
    }
    if (twice > 0) byPartition[partition] = twice;
    records += twice;
  }
  return { records, byPartition };
}
