import type { ExperimentDelta } from '../services/common/aggregateDelta.ts';
import { type ExposureEvent } from '../services/common/contracts/exposures.ts';
import { type MetricEvent } from '../services/common/contracts/metrics.ts';
import { isExposure, type PipelineEvent } from '../services/common/contracts/pipelineEvent.ts';
import type { ExperimentDefinition } from '../services/common/experimentDefinition.ts';

/**
 * An independent recomputation of what exp.aggregates must sum to, straight from the valid
 * events the drill put on the raw topics (decoded from the raw bytes, not from anything the
 * pipeline wrote), by the statistics rules of DESIGN.md: per user and experiment, the earliest
 * exposure by event time to a defined variant fixes the variant (at the same time, the
 * smaller variant id); an exposure to another variant makes the user a conflict; a metric
 * event counts if the experiment uses the metric and its event time is in [exposure,
 * exposure + attribution window); the user's value is the sum (sum metric) or 1 if any
 * (conversion); per variant Σx, Σx², conversions and the number of counted events.
 *
 * This ignores arrival order on purpose. It equals the aggregator's result while no event
 * reaches the aggregator behind its partition's watermark (stream time − aggregate.latenessMs):
 * a user's events spanning less than `ENVELOPE_MS` of event time cannot be, whatever the
 * interleaving of the raw topics within a few minutes. The drill's traffic stays inside that
 * envelope; `outsideEnvelope` lists users that do not.
 */
export const ENVELOPE_MS = 120_000;

export interface MetricTotals {
  sum: number;
  sumSquares: number;
  conversions: number;
  events: number;
}

/** Keyed `experiment/variant` (users, conflicts) and `experiment/variant/metric`. */
export interface Totals {
  users: Map<string, number>;
  conflicts: Map<string, number>;
  metrics: Map<string, MetricTotals>;
}

function emptyTotals(): Totals {
  return { users: new Map(), conflicts: new Map(), metrics: new Map() };
}

function add(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

function addMetric(totals: Totals, key: string, m: MetricTotals): void {
  const t = totals.metrics.get(key) ?? { sum: 0, sumSquares: 0, conversions: 0, events: 0 };
  t.sum += m.sum;
  t.sumSquares += m.sumSquares;
  t.conversions += m.conversions;
  t.events += m.events;
  totals.metrics.set(key, t);
}

export function oracleTotals(definitions: readonly ExperimentDefinition[], events: readonly PipelineEvent[]): { totals: Totals; outsideEnvelope: string[] } {
  const totals = emptyTotals();
  const outsideEnvelope: string[] = [];
  const experimentMetrics = new Set(definitions.flatMap((d) => [...d.primaryMetrics, ...d.guardrailMetrics].map((m) => m.name)));
  const byUser = new Map<string, { exposures: ExposureEvent[]; metrics: MetricEvent[] }>();
  for (const e of events) {
    let u = byUser.get(e.userId);
    if (!u) byUser.set(e.userId, (u = { exposures: [], metrics: [] }));
    if (isExposure(e)) u.exposures.push(e);
    else u.metrics.push(e);
  }
  for (const [userId, { exposures, metrics }] of byUser) {
    const used = metrics.filter((m) => experimentMetrics.has(m.metric));
    const times = [...exposures, ...used].map((e) => e.eventTime);
    if (times.length > 0 && Math.max(...times) - Math.min(...times) > ENVELOPE_MS) outsideEnvelope.push(userId);
    for (const d of definitions) {
      const variants = new Set(d.variants.map((v) => v.id));
      const mine = exposures.filter((x) => x.experimentId === d.id && variants.has(x.variantId)).sort((a, b) => a.eventTime - b.eventTime || (a.variantId < b.variantId ? -1 : a.variantId > b.variantId ? 1 : 0));
      const first = mine[0];
      if (!first) continue;
      add(totals.users, `${d.id}/${first.variantId}`, 1);
      if (mine.some((x) => x.variantId !== first.variantId)) add(totals.conflicts, `${d.id}/${first.variantId}`, 1);
      const windowEnd = first.eventTime + d.attributionWindowHours * 3_600_000;
      for (const m of [...d.primaryMetrics, ...d.guardrailMetrics]) {
        const counted = metrics.filter((e) => e.metric === m.name && e.eventTime >= first.eventTime && e.eventTime < windowEnd);
        const x = m.type === 'conversion' ? (counted.length > 0 ? 1 : 0) : counted.reduce((s, e) => s + e.value, 0);
        addMetric(totals, `${d.id}/${first.variantId}/${m.name}`, { sum: x, sumSquares: x * x, conversions: m.type === 'conversion' ? x : 0, events: counted.length });
      }
    }
  }
  return { totals, outsideEnvelope };
}

/** What the pipeline says: every delta on exp.aggregates, summed. */
export function sumDeltas(deltas: readonly ExperimentDelta[]): Totals {
  const totals = emptyTotals();
  for (const d of deltas) {
    for (const v of d.variants) {
      add(totals.users, `${d.experimentId}/${v.variantId}`, v.exposedUsers);
      add(totals.conflicts, `${d.experimentId}/${v.variantId}`, v.conflicts);
      for (const m of v.metrics) addMetric(totals, `${d.experimentId}/${v.variantId}/${m.metric}`, m);
    }
  }
  return totals;
}

/** Each difference as a sentence: counts exactly, sums within `relative` (absolute near zero). */
export function compareTotals(expected: Totals, actual: Totals, relative = 1e-9): string[] {
  const problems: string[] = [];
  for (const name of ['users', 'conflicts'] as const) {
    const e = expected[name];
    const a = actual[name];
    for (const key of new Set([...e.keys(), ...a.keys()])) {
      if ((e.get(key) ?? 0) !== (a.get(key) ?? 0)) problems.push(`${name} of ${key}: expected ${e.get(key) ?? 0}, aggregates say ${a.get(key) ?? 0}`);
    }
  }
  const zero: MetricTotals = { sum: 0, sumSquares: 0, conversions: 0, events: 0 };
  for (const key of new Set([...expected.metrics.keys(), ...actual.metrics.keys()])) {
    const e = expected.metrics.get(key) ?? zero;
    const a = actual.metrics.get(key) ?? zero;
    for (const field of ['events', 'conversions'] as const) {
      if (e[field] !== a[field]) problems.push(`${field} of ${key}: expected ${e[field]}, aggregates say ${a[field]}`);
    }
    for (const field of ['sum', 'sumSquares'] as const) {
      if (Math.abs(e[field] - a[field]) / Math.max(1, Math.abs(e[field])) > relative) problems.push(`${field} of ${key}: expected ${e[field]}, aggregates say ${a[field]}`);
    }
  }
  return problems;
}

/**
 * Deltas that cover the same input records twice: each delta names the exp.events partition
 * and offset range of its batch; per experiment and partition the ranges must not overlap.
 */
export function overlappingDeltas(deltas: readonly (ExperimentDelta & { sourcePartition: number; firstOffset: number; lastOffset: number })[]): string[] {
  const ranges = new Map<string, [number, number][]>();
  for (const d of deltas) {
    const key = `${d.experimentId}@exp.events:${d.sourcePartition}`;
    const list = ranges.get(key);
    if (list) list.push([d.firstOffset, d.lastOffset]);
    else ranges.set(key, [[d.firstOffset, d.lastOffset]]);
  }
  const overlaps: string[] = [];
  for (const [key, list] of ranges) {
    list.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < list.length; i++) {
      if (list[i]![0] <= list[i - 1]![1]) overlaps.push(`${key}: offsets ${list[i - 1]![0]}-${list[i - 1]![1]} and ${list[i]![0]}-${list[i]![1]}`);
    }
  }
  return overlaps;
}
