import type { ExperimentStatus } from '../common/experimentStatus.ts';
import type { TotalsHolder } from '../common/experimentTotals.ts';
import { allMetrics, controlVariant, type PublishedDefinition } from '../common/experimentDefinition.ts';
import { decisionLevels } from '../common/guardPolicy.ts';
import { allFinite } from '../common/numberBounds.ts';
import { differenceConfidenceSequence } from '../stats/confidenceSequence.ts';
import { toSummary } from '../stats/metricStatistics.ts';
import { normalQuantile } from '../stats/normal.ts';
import { welchTest } from '../stats/welch.ts';

/**
 * An experiment's live results as the admin API shows them: per variant and metric the
 * user-level mean with a 95 % interval (a ratio metric: the ratio of means Σx / Σy, its
 * interval by the delta method; a capped metric: the mean of the capped values), and against control the difference with both the
 * fixed-horizon Welch interval (valid only at the planned sample size) and the always-valid
 * confidence sequence the guard decides with (valid at every look). Pure.
 *
 * Every number in the results is finite: a figure that cannot be computed as a finite
 * number (too few users, or totals so large that a square or a difference overflows) is
 * null, never NaN or an infinity (which JSON would print as null anyway, without saying so).
 */
export interface MetricResult {
  metric: string;
  type: 'sum' | 'conversion' | 'ratio';
  role: 'primary' | 'guardrail';
  users: number;
  /**
   * The counts behind the mean: the variant's users, Σx and Σx² over users, the users who
   * converted, the metric events counted; for a ratio metric also Σy, Σy² and Σxy.
   */
  counts: MetricCounts;
  mean: number | null;
  interval95: [number, number] | null;
  versusControl: {
    difference: number;
    relativeDifference: number | null;
    welch95: [number, number] | null;
    alwaysValid: { alpha: number; lower: number; upper: number } | null;
  } | null;
}

export interface MetricCounts {
  users: number;
  sum: number;
  sumSquares: number;
  conversions: number;
  events: number;
  sumY?: number;
  sumSquaresY?: number;
  sumXY?: number;
}

export interface VariantResult {
  variantId: string;
  plannedWeight: number;
  users: number;
  share: number;
  conflicts: number;
  metrics: MetricResult[];
}

export interface ExperimentResults {
  experimentId: string;
  definitionVersion: number | null;
  /** Null when exp.state has no status for it (not defined through the control service). */
  status: ExperimentStatus['status'] | null;
  statusDetail: ExperimentStatus | null;
  control: string | null;
  users: number;
  variants: VariantResult[];
}

export function liveResults(experimentId: string, published: PublishedDefinition | undefined, totals: TotalsHolder | undefined, status: ExperimentStatus | undefined): ExperimentResults {
  const variants = totals?.variants ?? {};
  const definition = published?.definition;
  const variantIds = definition ? definition.variants.map((v) => v.id) : Object.keys(variants).sort();
  const control = definition ? controlVariant(definition) : null;
  const metrics = definition ? allMetrics(definition).map((m) => ({ ...m, role: definition.primaryMetrics.some((p) => p.name === m.name) ? ('primary' as const) : ('guardrail' as const) })) : [];
  const users = variantIds.reduce((n, id) => n + (variants[id]?.users ?? 0), 0);
  const z95 = normalQuantile(0.975);
  return {
    experimentId,
    definitionVersion: published?.version ?? null,
    status: status?.status ?? null,
    statusDetail: status ?? null,
    control,
    users,
    variants: variantIds.map((variantId) => ({
      variantId,
      plannedWeight: definition?.variants.find((v) => v.id === variantId)?.weight ?? 0,
      users: variants[variantId]?.users ?? 0,
      share: users === 0 ? 0 : (variants[variantId]?.users ?? 0) / users,
      conflicts: variants[variantId]?.conflicts ?? 0,
      metrics: metrics.map((metric): MetricResult => {
        const s = toSummary(variants[variantId], metric);
        const m = s.mean;
        const halfWidth = s.users >= 2 ? z95 * Math.sqrt(s.variance / s.users) : Number.NaN;
        let versusControl: MetricResult['versusControl'] = null;
        if (control && variantId !== control) {
          const c = toSummary(variants[control], metric);
          const alpha = metric.role === 'guardrail' ? decisionLevels(definition!).guardrail.alpha : 0.05;
          const welch = welchTest(c, s, 0.05);
          const cs = differenceConfidenceSequence(c, s, alpha, { plannedUsersPerVariant: definition!.plannedSampleSize });
          const controlMean = c.mean;
          const difference = m - controlMean;
          if (allFinite(m, controlMean, difference)) {
            versusControl = {
              difference,
              relativeDifference: controlMean !== 0 ? finiteOrNull(difference / Math.abs(controlMean)) : null,
              welch95: welch.ok ? finiteInterval(welch.lower, welch.upper) : null,
              alwaysValid: cs.ok && allFinite(cs.lower, cs.upper) ? { alpha, lower: cs.lower, upper: cs.upper } : null,
            };
          }
        }
        return {
          metric: metric.name,
          type: metric.type,
          role: metric.role,
          users: s.users,
          counts: countsOf(variants[variantId], metric),
          mean: finiteOrNull(m),
          interval95: finiteInterval(m - halfWidth, m + halfWidth),
          versusControl,
        };
      }),
    })),
  };
}

function countsOf(variant: TotalsHolder['variants'][string] | undefined, metric: { name: string; type: string }): MetricCounts {
  const s = variant?.metrics[metric.name];
  const counts: MetricCounts = { users: variant?.users ?? 0, sum: s?.sum ?? 0, sumSquares: s?.sumSquares ?? 0, conversions: s?.conversions ?? 0, events: s?.events ?? 0 };
  return metric.type === 'ratio' ? { ...counts, sumY: s?.sumY ?? 0, sumSquaresY: s?.sumSquaresY ?? 0, sumXY: s?.sumXY ?? 0 } : counts;
}

function finiteOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

function finiteInterval(lower: number, upper: number): [number, number] | null {
  return allFinite(lower, upper) ? [lower, upper] : null;
}
