import type { ExperimentDelta } from '../common/aggregateDelta.ts';

/**
 * The guard's global view of one experiment: the sum of every delta so far, per variant
 * (users, conflicts, per-metric Σx, Σx², conversions) and recent per-minute exposures, plus
 * the incidents already raised (so each is raised, and halted, once).
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

export interface Incident {
  raisedAt: number;
  halted: boolean;
  definitionVersion: number;
}

export interface ExperimentState {
  experimentId: string;
  variants: Record<string, VariantTotals>;
  incidents: Record<string, Incident>;
}

const MINUTES_KEPT = 15;

export function emptyExperimentState(experimentId: string): ExperimentState {
  return { experimentId, variants: {}, incidents: {} };
}

export function mergeDelta(state: ExperimentState, delta: ExperimentDelta): void {
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

function trimMinutes(state: ExperimentState): void {
  const minutes = new Set<number>();
  for (const v of Object.values(state.variants)) for (const m of Object.keys(v.exposuresByMinute)) minutes.add(Number(m));
  const keep = new Set([...minutes].sort((a, b) => b - a).slice(0, MINUTES_KEPT).map(String));
  for (const v of Object.values(state.variants)) for (const m of Object.keys(v.exposuresByMinute)) if (!keep.has(m)) delete v.exposuresByMinute[m];
}

export function encodeExperimentState(state: ExperimentState): Buffer {
  return Buffer.from(JSON.stringify(state));
}

export function decodeExperimentState(buffer: Buffer): ExperimentState {
  return JSON.parse(buffer.toString('utf8')) as ExperimentState;
}
