import { describe, expect, it } from 'vitest';
import { reprocessedRecords } from '../../bench/sourceRanges.ts';

const range = (sourcePartition: number, firstOffset: number, lastOffset: number) => ({ sourcePartition, firstOffset, lastOffset });

describe('bench reprocessed records', () => {
  it('finds none in back-to-back batches, with the deltas of one batch sharing its range', () => {
    expect(reprocessedRecords([range(0, 0, 99), range(0, 0, 99), range(0, 100, 199), range(1, 0, 50), range(0, 250, 300)])).toEqual({ records: 0, byPartition: {} });
  });

  it('counts the offsets two batches of a partition both covered', () => {
    // Partition 0: 0-99 then 60-159 (40 twice); partition 2: 10-20 inside 0-50 (11 twice).
    expect(reprocessedRecords([range(0, 60, 159), range(0, 0, 99), range(2, 0, 50), range(2, 10, 20), range(1, 0, 10)])).toEqual({ records: 51, byPartition: { 0: 40, 2: 11 } });
  });
});
