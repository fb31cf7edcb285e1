import { emptyStatistics, merge, STATISTIC_FIELDS, statisticValues, type VariantMetrics } from '../stats/metricStatistics.ts';
import type { ExperimentDelta } from './aggregateDelta.ts';
import { allFinite } from './numberBounds.ts';

/**
 * An experiment's running totals, the sum of every delta from exp.aggregates so far, per
 * variant: users, conflicts, per-metric Σx, Σx², conversions, and recent per-minute
 * exposures. The guard keeps them to decide; the admin API keeps them to show live results.
 */
export interface VariantTotals extends VariantMetrics {
  conflicts: number;
  /** Exposures per event-time minute (ms at the minute's start), recent minutes only. */
  exposuresByMinute: Record<string, number>;
}

export interface TotalsHolder {
  variants: Record<string, VariantTotals>;
}

const MINUTES_KEPT = 15;

/**
 * Why part of a delta was not merged: stable codes (logged and counted by the readers).
 * A delta that carries a NaN or an infinity, or that would push a total past the largest
 * double, must not poison totals that only ever add: that part is skipped, the rest merged.
 */
export const SKIPPED_DELTA_REASONS = {
  NON_FINITE_DELTA: 'the delta itself holds a NaN or an infinity',
  TOTAL_WOULD_OVERFLOW: 'adding the delta would make a total non-finite',
} as const;

export type SkippedDeltaReason = keyof typeof SKIPPED_DELTA_REASONS;

/** A part of a delta left out of the totals: a variant's counts (metric null), one metric's change, or an exposure bucket. */
export interface SkippedDeltaPart {
  variantId: string;
  metric: string | null;
  reason: SkippedDeltaReason;
  /** The delta's numbers as text (JSON would print a non-finite one as null). */
  detail: string;
}

/**
 * Adds a delta to the totals. Each part (a variant's counts, one metric's Σx, Σx²,
 * conversions and events together, an exposure bucket) is merged whole or skipped whole, so
 * a metric's figures stay consistent with each other; the skipped parts are returned.
 */
export function mergeDelta(state: TotalsHolder, delta: ExperimentDelta): SkippedDeltaPart[] {
  const skipped: SkippedDeltaPart[] = [];
  const problem = (change: number[], result: number[]): SkippedDeltaReason | undefined => (!allFinite(...change) ? 'NON_FINITE_DELTA' : !allFinite(...result) ? 'TOTAL_WOULD_OVERFLOW' : undefined);
  for (const v of delta.variants) {
    const totals = variantTotals(state, v.variantId);
    const counts = problem([v.exposedUsers, v.conflicts], [totals.users + v.exposedUsers, totals.conflicts + v.conflicts]);
    if (counts) {
      skipped.push({ variantId: v.variantId, metric: null, reason: counts, detail: `exposedUsers=${v.exposedUsers} conflicts=${v.conflicts}` });
    } else {
      totals.users += v.exposedUsers;
      totals.conflicts += v.conflicts;
    }
    for (const m of v.metrics) {
      const merged = merge(totals.metrics[m.metric] ?? emptyStatistics(), m);
      const reason = problem(statisticValues(m), statisticValues(merged));
      if (reason) {
        skipped.push({ variantId: v.variantId, metric: m.metric, reason, detail: STATISTIC_FIELDS.map((f) => `${f}=${m[f]}`).join(' ') });
        continue;
      }
      totals.metrics[m.metric] = merged;
    }
  }
  for (const b of delta.buckets) {
    if (b.metric !== null) continue;
    const totals = variantTotals(state, b.variantId);
    const minute = String(b.minute);
    const reason = problem([b.count], [(totals.exposuresByMinute[minute] ?? 0) + b.count]);
    if (reason) skipped.push({ variantId: b.variantId, metric: null, reason, detail: `exposures in minute ${minute}: ${b.count}` });
    else totals.exposuresByMinute[minute] = (totals.exposuresByMinute[minute] ?? 0) + b.count;
  }
  trimMinutes(state);
  return skipped;
}

function variantTotals(state: TotalsHolder, variantId: string): VariantTotals {
  return (state.variants[variantId] ??= { users: 0, conflicts: 0, metrics: {}, exposuresByMinute: {} });
}

function trimMinutes(state: TotalsHolder): void {
  const minutes = new Set<number>();
  for (const v of Object.values(state.variants)) for (const m of Object.keys(v.exposuresByMinute)) minutes.add(Number(m));
  const keep = new Set([...minutes].sort((a, b) => b - a).slice(0, MINUTES_KEPT).map(String));
  for (const v of Object.values(state.variants)) for (const m of Object.keys(v.exposuresByMinute)) if (!keep.has(m)) delete v.exposuresByMinute[m];
}


