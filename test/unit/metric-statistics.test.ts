import { describe, expect, it } from 'vitest';
import { add, emptyStatistics, merge, STATISTIC_FIELDS, toSummary, type MetricStatistics } from '../../services/stats/metricStatistics.ts';
import { randomInt, seededRandom } from '../support/random.ts';

// Property tests of the one sufficient statistic, on seeded random data. The oracle is the
// naive computation from the raw per-user values, written out here: mean = Σx / n and the
// two-pass sample variance Σ(x − mean)² / (n − 1). Integer data is summed exactly by doubles
// (every partial sum is far below 2^53), so merges of it must agree to the bit; real-valued
// data agrees to a relative 1e-12 (rounding of a different summation order).

const ofUser = (x: number): MetricStatistics => ({ sum: x, sumSquares: x * x, conversions: x > 0 ? 1 : 0, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 });

function naive(values: number[]): { mean: number; variance: number } {
  let total = 0;
  for (const x of values) total += x;
  const mean = total / values.length;
  let squares = 0;
  for (const x of values) squares += (x - mean) * (x - mean);
  return { mean, variance: squares / (values.length - 1) };
}

/** Values split into 1..8 random consecutive chunks, each chunk's statistics by `add`. */
function chunks(random: () => number, values: number[]): MetricStatistics[] {
  const count = 1 + randomInt(random, 8);
  const parts = Array.from({ length: count }, () => emptyStatistics());
  for (const x of values) add(parts[randomInt(random, count)]!, ofUser(x));
  return parts;
}

function shuffled<T>(random: () => number, xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(random, i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Merges the parts in a random grouping (a random binary tree over a random order). */
function mergeAnyhow(random: () => number, parts: MetricStatistics[]): MetricStatistics {
  let pool = shuffled(random, parts);
  while (pool.length > 1) {
    const i = randomInt(random, pool.length - 1);
    pool = [...pool.slice(0, i), merge(pool[i]!, pool[i + 1]!), ...pool.slice(i + 2)];
  }
  return pool[0] ?? emptyStatistics();
}

const integers = (random: () => number, n: number) => Array.from({ length: n }, () => randomInt(random, 2_001) - 1_000);
const reals = (random: () => number, n: number) => Array.from({ length: n }, () => (random() - 0.3) * 10 ** randomInt(random, 4));

describe('metric sufficient statistics', () => {
  it('merge is commutative, to the bit, for any values', () => {
    const random = seededRandom(101);
    for (let trial = 0; trial < 200; trial++) {
      const [a, b] = [chunks(random, reals(random, 50))[0]!, chunks(random, reals(random, 50))[0]!];
      expect(merge(a, b)).toEqual(merge(b, a));
    }
  });

  it('merge is associative: any split and any grouping give the same totals (exactly on integers)', () => {
    const random = seededRandom(202);
    for (let trial = 0; trial < 200; trial++) {
      const values = integers(random, 1 + randomInt(random, 300));
      const whole = values.reduce((s, x) => add(s, ofUser(x)), emptyStatistics());
      expect(mergeAnyhow(random, chunks(random, values))).toEqual(whole);
      const [a, b, c] = [chunks(random, values)[0]!, chunks(random, values)[0]!, chunks(random, values)[0]!];
      expect(merge(merge(a, b), c)).toEqual(merge(a, merge(b, c)));
    }
  });

  it('merge of real-valued parts agrees with the whole to 1e-12, and the empty statistics are its identity', () => {
    const random = seededRandom(303);
    for (let trial = 0; trial < 200; trial++) {
      const values = reals(random, 2 + randomInt(random, 300));
      const whole = values.reduce((s, x) => add(s, ofUser(x)), emptyStatistics());
      const merged = mergeAnyhow(random, chunks(random, values));
      for (const f of STATISTIC_FIELDS) expect(Math.abs(merged[f] - whole[f])).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(whole[f])) * values.length);
      expect(merge(whole, emptyStatistics())).toEqual(whole);
    }
  });

  it('toSummary matches the naive mean and variance of the raw values', () => {
    const random = seededRandom(404);
    for (let trial = 0; trial < 300; trial++) {
      const values = (trial % 2 === 0 ? integers : reals)(random, 2 + randomInt(random, 500));
      const statistics = mergeAnyhow(random, chunks(random, values));
      const summary = toSummary({ users: values.length, metrics: { m: statistics } }, 'm');
      const expected = naive(values);
      expect(summary.users).toBe(values.length);
      expect(summary.mean).toBeCloseTo(expected.mean, 9);
      expect(Math.abs(summary.variance - expected.variance)).toBeLessThanOrEqual(1e-9 * Math.max(1, expected.variance));
    }
  });

  it('toSummary of users whose totals moved by increments (Σx += v, Σx² += (x+v)² − x²) matches their final totals', () => {
    // How the aggregator keeps a user-level metric: each event moves one user's running total.
    const random = seededRandom(505);
    for (let trial = 0; trial < 100; trial++) {
      const totals = new Array<number>(1 + randomInt(random, 200)).fill(0);
      const statistics = emptyStatistics();
      for (let e = 0; e < 5 * totals.length; e++) {
        const u = randomInt(random, totals.length);
        const before = totals[u]!;
        const after = before + randomInt(random, 50);
        add(statistics, { sum: after - before, sumSquares: after * after - before * before, conversions: before === 0 && after > 0 ? 1 : 0, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 });
        totals[u] = after;
      }
      const expected = naive(totals);
      const summary = toSummary({ users: totals.length, metrics: { m: statistics } }, 'm');
      expect(statistics.conversions).toBe(totals.filter((x) => x > 0).length);
      expect(summary.mean).toBeCloseTo(expected.mean, 9);
      if (totals.length > 1) expect(Math.abs(summary.variance - expected.variance)).toBeLessThanOrEqual(1e-9 * Math.max(1, expected.variance));
    }
  });

  it('add changes only its first argument and reads only the statistic fields; merge changes neither', () => {
    const a = { sum: 1, sumSquares: 1, conversions: 1, events: 1, sumY: 2, sumSquaresY: 4, sumXY: 2 };
    const delta = { metric: 'latency', sum: 2, sumSquares: 4, conversions: 0, events: 3, sumY: 1, sumSquaresY: 1, sumXY: 2 };
    const merged = merge(a, delta);
    expect(merged).toEqual({ sum: 3, sumSquares: 5, conversions: 1, events: 4, sumY: 3, sumSquaresY: 5, sumXY: 4 });
    expect(a).toEqual({ sum: 1, sumSquares: 1, conversions: 1, events: 1, sumY: 2, sumSquaresY: 4, sumXY: 2 });
    expect(add(a, delta)).toBe(a);
    expect(a).toEqual(merged);
    expect(delta).toEqual({ metric: 'latency', sum: 2, sumSquares: 4, conversions: 0, events: 3, sumY: 1, sumSquaresY: 1, sumXY: 2 });
  });

  it('toSummary of a variant or metric not seen yet: no users or zero sums, NaN where nothing can be estimated', () => {
    expect(toSummary(undefined, 'm')).toEqual({ users: 0, sum: 0, sumSquares: 0, mean: Number.NaN, variance: Number.NaN });
    expect(toSummary({ users: 4, metrics: {} }, 'm')).toEqual({ users: 4, sum: 0, sumSquares: 0, mean: 0, variance: 0 });
    expect(toSummary({ users: 1, metrics: { m: ofUser(3) } }, 'm')).toEqual({ users: 1, sum: 3, sumSquares: 9, mean: 3, variance: Number.NaN });
    // Every user has the same value: the rounding of Σx² − n·mean² is clamped at 0.
    expect(toSummary({ users: 3, metrics: { m: [0.1, 0.1, 0.1].reduce((s, x) => add(s, ofUser(x)), emptyStatistics()) } }, 'm').variance).toBe(0);
  });
});
