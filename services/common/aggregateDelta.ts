import type { MetricStatistics } from '../stats/metricStatistics.ts';

/**
 * The contract of exp.aggregates (schemas/AggregateDelta.avsc) as TypeScript: written by the
 * aggregator, read by the guard and the sink. Every field is additive across deltas.
 */
export interface MetricDelta extends MetricStatistics {
  metric: string;
}

export interface VariantDelta {
  variantId: string;
  exposedUsers: number;
  conflicts: number;
  metrics: MetricDelta[];
}

export interface MinuteBucket {
  minute: number;
  variantId: string;
  metric: string | null;
  count: number;
  sum: number;
}

export interface ExperimentDelta {
  experimentId: string;
  definitionVersion: number;
  variants: VariantDelta[];
  buckets: MinuteBucket[];
}
