import { describe, expect, it } from 'vitest';
import { compareTotals, totalsOfDeltas, totalsOfKafkaStreamsRows } from '../../bench/variantTotals.ts';

const row = (experimentId: string, variantId: string, metric: string, t: Partial<{ users: number; conflicts: number; sum: number; sumSquares: number; conversions: number; events: number }>) => ({ experimentId, variantId, metric, users: 0, conflicts: 0, sum: 0, sumSquares: 0, conversions: 0, events: 0, ...t });

describe('bench variant totals', () => {
  const deltas = [
    { experimentId: 'e', definitionVersion: 1, buckets: [], variants: [{ variantId: 'control', exposedUsers: 2, conflicts: 0, metrics: [{ metric: 'revenue', sum: 0.1, sumSquares: 0.01, conversions: 0, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 }] }] },
    { experimentId: 'e', definitionVersion: 1, buckets: [], variants: [{ variantId: 'control', exposedUsers: 1, conflicts: 1, metrics: [{ metric: 'revenue', sum: 0.2, sumSquares: 0.04, conversions: 0, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 }] }] },
  ];

  it('adds the deltas of the pipeline and the tasks of Kafka Streams up to the same totals', () => {
    const pipeline = totalsOfDeltas(deltas);
    expect(pipeline.get('e / control')).toMatchObject({ users: 3, conflicts: 1 });
    // Two tasks, the sums added in another order: equal within the stated tolerance, not bit for bit.
    const streams = totalsOfKafkaStreamsRows([
      row('e', 'control', '', { users: 1, conflicts: 1 }),
      row('e', 'control', 'revenue', { sum: 0.2, sumSquares: 0.04, events: 1 }),
      row('e', 'control', '', { users: 2 }),
      row('e', 'control', 'revenue', { sum: 0.1, sumSquares: 0.01, events: 1 }),
    ]);
    expect(compareTotals(pipeline, streams)).toEqual([]);
  });

  it('names every difference, a missing cell included', () => {
    const pipeline = totalsOfDeltas(deltas);
    const streams = totalsOfKafkaStreamsRows([row('e', 'control', '', { users: 3, conflicts: 1 }), row('e', 'control', 'revenue', { sum: 0.3001, sumSquares: 0.05, events: 2 }), row('e', 'treatment', '', { users: 1 })]);
    expect(compareTotals(pipeline, streams, ['pipeline', 'kafka-streams'])).toEqual([
      'e / control / revenue: sum pipeline 0.30000000000000004, kafka-streams 0.3001',
      'e / treatment: users pipeline 0, kafka-streams 1',
    ]);
  });
});
