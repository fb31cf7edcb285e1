import type { ExperimentDelta } from './aggregateDelta.ts';

/**
 * An experiment's running totals, the sum of every delta from exp.aggregates so far, per
 * variant: users, conflicts, per-metric Σx, Σx², conversions, and recent per-minute
 * exposures. The guard keeps them to decide; the admin API keeps them to show live results.
 */
export interface MetricTotals {
  sum: number;
  sumSquares: number;
  conversions: number;
  events: number;
}

export interface VariantTotals {
  users: number;
  conflicts: number;
  metrics: Record<string, MetricTotals>;
  /** Exposures per event-time minute (ms at the minute's start), recent minutes only. */
  exposuresByMinute: Record<string, number>;
}

export interface TotalsHolder {
  variants: Record<string, VariantTotals>;
}

const MINUTES_KEPT = 15;

export function mergeDelta(state: TotalsHolder, delta: ExperimentDelta): void {
  for (const v of delta.variants) {
    const totals = (state.variants[v.variantId] ??= { users: 0, conflicts: 0, metrics: {}, exposuresByMinute: {} });
    totals.users += v.exposedUsers;
    totals.conflicts += v.conflicts;
    for (const m of v.metrics) {
      const t = (totals.metrics[m.metric] ??= { sum: 0, sumSquares: 0, conversions: 0, events: 0 });
      t.sum += m.sum;
      t.sumSquares += m.sumSquares;
      t.conversions += m.conversions;
      t.events += m.events;
    }
  }
  for (const b of delta.buckets) {
    if (b.metric !== null) continue;
    const totals = (state.variants[b.variantId] ??= { users: 0, conflicts: 0, metrics: {}, exposuresByMinute: {} });
    totals.exposuresByMinute[String(b.minute)] = (totals.exposuresByMinute[String(b.minute)] ?? 0) + b.count;
  }
  trimMinutes(state);
}

function trimMinutes(state: TotalsHolder): void {
  const minutes = new Set<number>();
  for (const v of Object.values(state.variants)) for (const m of Object.keys(v.exposuresByMinute)) minutes.add(Number(m));
  const keep = new Set([...minutes].sort((a, b) => b - a).slice(0, MINUTES_KEPT).map(String));
  for (const v of Object.values(state.variants)) for (const m of Object.keys(v.exposuresByMinute)) if (!keep.has(m)) delete v.exposuresByMinute[m];
}


