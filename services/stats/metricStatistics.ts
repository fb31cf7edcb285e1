import { mean, sampleVariance, type UserLevelSummary } from './userLevelSummary.ts';

/**
 * The one definition of a metric's sufficient statistics in one variant (growthbook
 * `gbstats/models/statistics.py`): Σx and Σx² over users' values, conversions (users whose
 * value turned positive) and metric events. Every field is additive, so partitions, batches
 * and deltas combine by `add` / `merge`, in any order and grouping. A variant's users are
 * counted once for all its metrics (`VariantMetrics.users`); `toSummary` joins the two into
 * the user-level summary (users, Σx, Σx², mean, sample variance) the tests take. Pure.
 *
 * The same fields travel on exp.aggregates (schemas/AggregateDelta.avsc, one record per
 * metric) and in ClickHouse's aggregate_deltas; this module does not change that format.
 */
export interface MetricStatistics {
  sum: number;
  sumSquares: number;
  conversions: number;
  events: number;
}

export type StatisticField = keyof MetricStatistics;

/** Every field, in declaration order; the check below fails to compile if one is missing. */
export const STATISTIC_FIELDS = ['sum', 'sumSquares', 'conversions', 'events'] as const satisfies readonly StatisticField[];
const everyFieldListed: Exclude<StatisticField, (typeof STATISTIC_FIELDS)[number]> extends never ? true : never = true;
void everyFieldListed;

/** A variant's users and its metrics' statistics, by metric name. */
export interface VariantMetrics {
  users: number;
  metrics: Record<string, MetricStatistics>;
}

/** User-level summary of one metric in one variant: what the tests in services/stats take, with its mean and variance. */
export interface MetricSummary extends UserLevelSummary {
  /** Σx / users; NaN without users. */
  mean: number;
  /** Unbiased sample variance; NaN under two users. */
  variance: number;
}

export function emptyStatistics(): MetricStatistics {
  return { sum: 0, sumSquares: 0, conversions: 0, events: 0 };
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

/** The user-level summary of `metric` in `variant`; a variant or metric not seen yet has no users or zero sums. */
export function toSummary(variant: VariantMetrics | undefined, metric: string): MetricSummary {
  const s = variant?.metrics[metric];
  const summary: UserLevelSummary = { users: variant?.users ?? 0, sum: s?.sum ?? 0, sumSquares: s?.sumSquares ?? 0 };
  return { ...summary, mean: mean(summary), variance: sampleVariance(summary) };
}
