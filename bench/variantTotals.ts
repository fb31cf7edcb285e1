import type { ExperimentDelta } from '../services/common/aggregateDelta.ts';

/**
 * Final per-variant totals, the figures the comparison checks: per experiment × variant the
 * users and conflicts, per experiment × variant × metric Σx, Σx², conversions and events.
 * The pipeline's come from adding up its deltas on exp.aggregates; the Kafka Streams job's
 * from adding up the latest totals record of each of its tasks. Pure.
 */
export interface VariantTotal {
  users: number;
  conflicts: number;
  sum: number;
  sumSquares: number;
  conversions: number;
  events: number;
}

/** Keyed by `experiment / variant` (users, conflicts) and `experiment / variant / metric` (the rest). */
export type VariantTotals = Map<string, VariantTotal>;

/** A row of the Kafka Streams job's totals record (bench/kafka-streams ValidateAndAggregate): metric '' for the variant's users and conflicts. */
export interface KafkaStreamsTotalRow extends VariantTotal {
  experimentId: string;
  variantId: string;
  metric: string;
}

const empty = (): VariantTotal => ({ users: 0, conflicts: 0, sum: 0, sumSquares: 0, conversions: 0, events: 0 });

function addTo(totals: VariantTotals, key: string, change: Partial<VariantTotal>): void {
  let t = totals.get(key);
  if (!t) totals.set(key, (t = empty()));
  for (const field of Object.keys(change) as (keyof VariantTotal)[]) t[field] += change[field] ?? 0;
}

export function totalsOfDeltas(deltas: Iterable<ExperimentDelta>): VariantTotals {
  const totals: VariantTotals = new Map();
  for (const d of deltas) {
    for (const v of d.variants) {
      addTo(totals, `${d.experimentId} / ${v.variantId}`, { users: v.exposedUsers, conflicts: v.conflicts });
      for (const m of v.metrics) addTo(totals, `${d.experimentId} / ${v.variantId} / ${m.metric}`, { sum: m.sum, sumSquares: m.sumSquares, conversions: m.conversions, events: m.events });
    }
  }
  return totals;
}

export function totalsOfKafkaStreamsRows(rows: Iterable<KafkaStreamsTotalRow>): VariantTotals {
  const totals: VariantTotals = new Map();
  for (const r of rows) {
    if (r.metric === '') addTo(totals, `${r.experimentId} / ${r.variantId}`, { users: r.users, conflicts: r.conflicts });
    else addTo(totals, `${r.experimentId} / ${r.variantId} / ${r.metric}`, { sum: r.sum, sumSquares: r.sumSquares, conversions: r.conversions, events: r.events });
  }
  return totals;
}

/**
 * The differences between two sets of totals, as readable lines (none: they agree). Counts
 * must be equal; Σx and Σx² are sums of doubles added in another order and grouping on each
 * side, so they must agree to a relative 1e-9 (absolute 1e-9 near zero).
 */
export const SUM_RELATIVE_TOLERANCE = 1e-9;

export function compareTotals(a: VariantTotals, b: VariantTotals, names: [string, string] = ['a', 'b']): string[] {
  const problems: string[] = [];
  for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(key) ?? empty();
    const y = b.get(key) ?? empty();
    for (const field of ['users', 'conflicts', 'conversions', 'events'] as const) {
      if (x[field] !== y[field]) problems.push(`${key}: ${field} ${names[0]} ${x[field]}, ${names[1]} ${y[field]}`);
    }
    for (const field of ['sum', 'sumSquares'] as const) {
      if (Math.abs(x[field] - y[field]) > SUM_RELATIVE_TOLERANCE * Math.max(1, Math.abs(x[field]), Math.abs(y[field]))) problems.push(`${key}: ${field} ${names[0]} ${x[field]}, ${names[1]} ${y[field]}`);
    }
  }
  return problems;
}
