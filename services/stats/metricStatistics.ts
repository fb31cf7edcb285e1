import { ratioOfMeans } from './ratioOfMeans.ts';
import { mean, sampleVariance, type UserLevelSummary } from './userLevelSummary.ts';

/**
 * The one definition of a metric's sufficient statistics in one variant (growthbook
 * `gbstats/models/statistics.py`): Σx and Σx² over users' values, conversions (users whose
 * value turned positive) and metric events; for a ratio metric (numerator x ÷ denominator y
 * per user) also Σy, Σy² and Σxy, which the delta method needs (./ratioOfMeans.ts); they stay
 * 0 for sum and conversion metrics. A capped metric's x is the user's value already capped.
 * Every field is additive, so partitions, batches and deltas combine by `add` / `merge`, in
 * any order and grouping. A variant's users are counted once for all its metrics
 * (`VariantMetrics.users`); `toSummary` joins the two into the user-level summary (users, Σx,
 * Σx², mean, sample variance; for a ratio the ratio of means and its delta-method variance)
 * the tests take. Pure.
 *
 * The same fields travel on exp.aggregates (schemas/AggregateDelta.avsc, one record per
 * metric) and in ClickHouse's aggregate_deltas.
 */
export interface MetricStatistics {
  sum: number;
  sumSquares: number;
  conversions: number;
  events: number;
  /** Σy over users: a ratio metric's denominator totals (0 otherwise). */
  sumY: number;
  /** Σy². */
  sumSquaresY: number;
  /** Σxy: numerator times denominator, per user. */
  sumXY: number;
}

export type StatisticField = keyof MetricStatistics;

/** Every field, in declaration order; the check below fails to compile if one is missing. */
export const STATISTIC_FIELDS = ['sum', 'sumSquares', 'conversions', 'events', 'sumY', 'sumSquaresY', 'sumXY'] as const satisfies readonly StatisticField[];
const everyFieldListed: Exclude<StatisticField, (typeof STATISTIC_FIELDS)[number]> extends never ? true : never = true;
void everyFieldListed;

/** A variant's users and its metrics' statistics, by metric name. */
export interface VariantMetrics {
  users: number;
  metrics: Record<string, MetricStatistics>;
}

/**
 * User-level summary of one metric in one variant: what the tests in services/stats take, with
 * its mean and variance (per user: the variance of the mean is variance / users).
 */
export interface MetricSummary extends UserLevelSummary {
  /** Σx / users (a ratio metric: Σx / Σy); NaN without users. */
  mean: number;
  /** Unbiased sample variance (a ratio metric: the delta method's, ./ratioOfMeans.ts); NaN under two users. */
  variance: number;
}

/** Which summary a metric has: the mean of x per user, or (type 'ratio') the ratio of the means of x and y. */
export interface MetricKind {
  name: string;
  type: string;
}

export function emptyStatistics(): MetricStatistics {
  return { sum: 0, sumSquares: 0, conversions: 0, events: 0, sumY: 0, sumSquaresY: 0, sumXY: 0 };
}

/** The fields' values in STATISTIC_FIELDS order (for checks that every one is finite). */
export function statisticValues(s: MetricStatistics): number[] {
  return STATISTIC_FIELDS.map((f) => s[f]);
}

/** Adds `change` into `into` (in place, for accumulators) and returns `into`. Reads only the statistic fields of `change`. */
export function add(into: MetricStatistics, change: MetricStatistics): MetricStatistics {
  for (const f of STATISTIC_FIELDS) into[f] += change[f];
  return into;
}

/** The statistics of both parts together, as a new object (neither argument changes). */
export function merge(a: MetricStatistics, b: MetricStatistics): MetricStatistics {
  return add(add(emptyStatistics(), a), b);
}

/**
 * The user-level summary of `metric` in `variant`; a variant or metric not seen yet has no
 * users or zero sums. A metric given by name, or of a type other than 'ratio', is summarised
 * by the mean of x; a ratio metric by Σx / Σy with the delta-method variance.
 */
export function toSummary(variant: VariantMetrics | undefined, metric: string | MetricKind): MetricSummary {
  const name = typeof metric === 'string' ? metric : metric.name;
  const s = variant?.metrics[name] ?? emptyStatistics();
  const summary: UserLevelSummary = { users: variant?.users ?? 0, sum: s.sum, sumSquares: s.sumSquares };
  if (typeof metric !== 'string' && metric.type === 'ratio') {
    const ratio = ratioOfMeans({ users: summary.users, sumX: s.sum, sumSquaresX: s.sumSquares, sumY: s.sumY, sumSquaresY: s.sumSquaresY, sumXY: s.sumXY });
    return { ...summary, mean: ratio.ratio, variance: ratio.variance };
  }
  return { ...summary, mean: mean(summary), variance: sampleVariance(summary) };
}
