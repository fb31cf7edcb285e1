import type { ExposureEvent } from '../../services/common/contracts/exposures.ts';
import type { MetricEvent } from '../../services/common/contracts/metrics.ts';
import { parseDefinition, type ExperimentDefinition, type PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import type { ExperimentDelta } from '../../services/aggregate/deltaAccumulator.ts';
import { randomInt, seededRandom } from './random.ts';
import type { MetricStatistics } from '../../services/stats/metricStatistics.ts';
import type { Exposure, Metric, PipelineEvent } from '../../services/common/contracts/pipelineEvent.ts';

/**
 * A reproducible data set for the aggregator and an independent, straightforward
 * computation of what it should produce (the oracle), by the event-time definition of the
 * truth: per user and experiment, the earliest exposure to a defined variant by event time
 * (ties: the smaller variant id) fixes the variant; each metric's user value comes from the
 * user's metric events with an event time in [exposure, exposure + window), whatever order
 * they came in; then sums over users. No incremental updates, no deltas, no arrival order. A
 * capped metric's user value is min(total, cap) of the final total; a ratio metric's x and y
 * are the user's totals of its numerator and denominator events.
 *
 * The events follow a clock over six hours of event time (or `spanMs`), each within ±DISORDER_MS / 2 of it,
 * so none arrives more than DISORDER_MS behind the newest before it: under the aggregator's
 * default lateness, none is late, and the oracle needs no notion of arrival. Inside that
 * bound they are out of order on purpose: metric events ahead of their exposure, exposures
 * whose earlier twin (same or another variant) comes after them, and metric events exactly on
 * the edges of a window.
 */
export const DISORDER_MS = 240_000;
export const BASE_TIME = Date.UTC(2026, 10, 20);
const SPAN_MS = 6 * 3_600_000;

export function fixtureDefinitions(): PublishedDefinition[] {
  const defs: ExperimentDefinition[] = [
    { id: 'exp-checkout', name: 'Checkout', hypothesis: 'h', owner: 'o', variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }], primaryMetrics: [{ name: 'purchase', type: 'conversion' }, { name: 'revenue', type: 'sum' }], guardrailMetrics: [], attributionWindowHours: 24, plannedSampleSize: 5000 },
    { id: 'exp-search', name: 'Search', hypothesis: 'h', owner: 'o', variants: [{ id: 'a', weight: 0.34 }, { id: 'b', weight: 0.33 }, { id: 'c', weight: 0.33 }], primaryMetrics: [{ name: 'clicks', type: 'sum' }], guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.1 } }, { name: 'latency_per_click', type: 'ratio', numerator: 'latency', denominator: 'clicks', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.2 } }], attributionWindowHours: 1, plannedSampleSize: 5000 },
    { id: 'exp-banner', name: 'Banner', hypothesis: 'h', owner: 'o', variants: [{ id: 'off', weight: 0.5 }, { id: 'on', weight: 0.5 }], primaryMetrics: [{ name: 'revenue', type: 'sum' }, { name: 'clicks', type: 'sum', cap: { upper: 60 } }, { name: 'latency_per_purchase', type: 'ratio', numerator: 'latency', denominator: 'purchase' }], guardrailMetrics: [{ name: 'purchase', type: 'conversion', harmfulDirection: 'decrease', tolerance: { kind: 'absolute', value: 0.01 } }], attributionWindowHours: 48, plannedSampleSize: 5000 },
  ].map((d) => parseDefinition(d, 'fixture'));
  return defs.map((definition, i) => ({ experimentId: definition.id, version: i + 1, appliedAt: BASE_TIME, definition }));
}

export function generateEvents(seed: number, users: number, total: number, disorderMs = DISORDER_MS, spanMs = SPAN_MS): PipelineEvent[] {
  const random = seededRandom(seed);
  const defs = fixtureDefinitions();
  const events: PipelineEvent[] = [];
  const exposuresOf = new Map<string, number[]>();
  const metrics = ['purchase', 'revenue', 'clicks', 'latency', 'not-in-any-experiment'];
  const half = Math.floor(disorderMs / 2);
  const valueOf = (metric: string) => (metric === 'purchase' ? 1 : Math.round(random() * 10_000) / 100 - (metric === 'latency' ? 0 : 5));
  for (let i = 0; i < total; i++) {
    const clock = BASE_TIME + Math.floor((i * spanMs) / total);
    const [low, high] = [clock - half, clock + half];
    const around = () => low + randomInt(random, high - low + 1);
    const userId = `user-${randomInt(random, users)}`;
    if (random() < 0.3) {
      const def = random() < 0.03 ? undefined : defs[randomInt(random, defs.length)]!.definition;
      const experimentId = def?.id ?? 'exp-unknown';
      const variants = def?.variants.map((v) => v.id) ?? ['x'];
      // Mostly a stable variant per user; sometimes another one (a conflict) or an unknown one.
      const stable = variants[Number(userId.slice(5)) % variants.length]!;
      const pick = () => (random() < 0.02 ? variants[randomInt(random, variants.length)]! : random() < 0.01 ? 'not-a-variant' : stable);
      const eventTime = around();
      exposuresOf.set(userId, [...(exposuresOf.get(userId) ?? []), eventTime]);
      const roll = random();
      if (roll < 0.1 && i + 1 < total) {
        // A metric event that happened a little after this exposure arrives before it.
        const metric = metrics[randomInt(random, metrics.length - 1)]!;
        events.push({ kind: 'metric' as const, eventId: `m${i}`, userId, metric, value: valueOf(metric), eventTime: Math.min(high, eventTime + randomInt(random, 90_000)) });
        i++;
      }
      events.push({ kind: 'exposure' as const, eventId: `x${i}`, experimentId, variantId: pick(), userId, eventTime, context: null });
      if (roll > 0.9 && i + 1 < total) {
        // An earlier exposure of the same user arrives after it (another variant half the time,
        // or the same one at the same time: the tie rule): it moves the user.
        i++;
        const earlier = random() < 0.1 ? eventTime : Math.max(low, eventTime - 1 - randomInt(random, half));
        const variantId = random() < 0.5 ? variants[randomInt(random, variants.length)]! : stable;
        exposuresOf.get(userId)!.push(earlier);
        events.push({ kind: 'exposure' as const, eventId: `x${i}`, experimentId, variantId, userId, eventTime: earlier, context: null });
      }
    } else {
      const metric = metrics[randomInt(random, metrics.length)]!;
      let eventTime = around();
      // Sometimes exactly on an edge of a window of one of the user's exposures (the 1-hour
      // window of exp-search: its end, excluded, and the last millisecond before it; or the
      // exposure itself, included), when that edge is within the disorder bound.
      const edges = (exposuresOf.get(userId) ?? []).flatMap((t) => [t, t - 1, t + 3_600_000, t + 3_600_000 - 1]).filter((t) => t >= low && t <= high);
      if (edges.length > 0 && random() < 0.5) eventTime = edges[randomInt(random, edges.length)]!;
      events.push({ kind: 'metric' as const, eventId: `m${i}`, userId, metric, value: valueOf(metric), eventTime });
    }
  }
  return events;
}

/** How far each event arrives behind the newest event time before it (the most is what a lateness must cover). */
export function largestDisorder(events: PipelineEvent[]): number {
  let newest = Number.NEGATIVE_INFINITY;
  let largest = 0;
  for (const e of events) {
    largest = Math.max(largest, newest - e.eventTime);
    newest = Math.max(newest, e.eventTime);
  }
  return largest;
}

/** Totals keyed `experiment/variant` and `experiment/variant/metric`. */
/** A metric's totals: the fields of the one sufficient statistic (only its type is used here, none of its code). */
export type MetricTotals = MetricStatistics;

export interface Totals {
  users: Map<string, number>;
  conflicts: Map<string, number>;
  metrics: Map<string, MetricTotals>;
}

const noTotals = (): MetricTotals => ({ sum: 0, sumSquares: 0, conversions: 0, events: 0, sumY: 0, sumSquaresY: 0, sumXY: 0 });

/** The metric events a metric definition reads, written out here (not the code under test's). */
function eventsRead(m: { name: string; type: string; numerator?: string; denominator?: string }): string[] {
  return m.type === 'ratio' ? [m.numerator!, m.denominator!] : [m.name];
}

export function oracle(definitions: PublishedDefinition[], events: PipelineEvent[]): Totals {
  const totals: Totals = { users: new Map(), conflicts: new Map(), metrics: new Map() };
  const byUser = new Map<string, PipelineEvent[]>();
  for (const e of events) {
    const list = byUser.get(e.userId);
    if (list) list.push(e);
    else byUser.set(e.userId, [e]);
  }
  for (const userEvents of byUser.values()) {
    for (const { definition } of definitions) {
      const variants = new Set(definition.variants.map((v) => v.id));
      const exposures = userEvents.filter((e): e is Exposure => e.kind === 'exposure' && e.experimentId === definition.id && variants.has(e.variantId));
      if (exposures.length === 0) continue;
      // The earliest by event time; at the same time, the smallest variant id.
      const first = exposures.reduce((a, b) => (b.eventTime < a.eventTime || (b.eventTime === a.eventTime && b.variantId < a.variantId) ? b : a));
      const variant = first.variantId;
      const exposedAt = first.eventTime;
      add(totals.users, `${definition.id}/${variant}`, 1);
      if (exposures.some((e) => e.variantId !== variant)) add(totals.conflicts, `${definition.id}/${variant}`, 1);
      const metricDefs = [...definition.primaryMetrics, ...definition.guardrailMetrics];
      const windowEnd = exposedAt + definition.attributionWindowHours * 3_600_000;
      for (const m of metricDefs) {
        const names = eventsRead(m);
        const attributed = userEvents.filter((e): e is Metric => e.kind === 'metric' && names.includes(e.metric) && e.eventTime >= exposedAt && e.eventTime < windowEnd);
        const total = (metric: string) => attributed.filter((e) => e.metric === metric).reduce((s, e) => s + e.value, 0);
        let x = 0;
        let y = 0;
        if (m.type === 'conversion') x = attributed.length > 0 ? 1 : 0;
        else if (m.type === 'ratio') [x, y] = [total(m.numerator), total(m.denominator)];
        else x = m.cap ? Math.min(total(m.name), m.cap.upper) : total(m.name);
        const key = `${definition.id}/${variant}/${m.name}`;
        const t = totals.metrics.get(key) ?? noTotals();
        t.sum += x;
        t.sumSquares += x * x;
        t.conversions += m.type === 'conversion' ? x : 0;
        t.events += attributed.length;
        t.sumY += y;
        t.sumSquaresY += y * y;
        t.sumXY += x * y;
        totals.metrics.set(key, t);
      }
    }
  }
  return totals;
}

export function sumDeltas(deltas: ExperimentDelta[]): Totals {
  const totals: Totals = { users: new Map(), conflicts: new Map(), metrics: new Map() };
  for (const d of deltas) {
    for (const v of d.variants) {
      add(totals.users, `${d.experimentId}/${v.variantId}`, v.exposedUsers);
      add(totals.conflicts, `${d.experimentId}/${v.variantId}`, v.conflicts);
      for (const m of v.metrics) {
        const key = `${d.experimentId}/${v.variantId}/${m.metric}`;
        const t = totals.metrics.get(key) ?? noTotals();
        t.sum += m.sum;
        t.sumSquares += m.sumSquares;
        t.conversions += m.conversions;
        t.events += m.events;
        t.sumY += m.sumY;
        t.sumSquaresY += m.sumSquaresY;
        t.sumXY += m.sumXY;
        totals.metrics.set(key, t);
      }
    }
  }
  return totals;
}

/** Differences between two totals: counts exactly, sums to `relative` (absolute near zero). */
export function compareTotals(expected: Totals, actual: Totals, relative = 1e-9): string[] {
  const problems: string[] = [];
  const nonZero = (m: Map<string, number>) => new Map([...m].filter(([, v]) => v !== 0));
  for (const [name, e, a] of [['users', nonZero(expected.users), nonZero(actual.users)], ['conflicts', nonZero(expected.conflicts), nonZero(actual.conflicts)]] as const) {
    for (const key of new Set([...e.keys(), ...a.keys()])) if (e.get(key) !== a.get(key)) problems.push(`${name} ${key}: expected ${e.get(key)}, got ${a.get(key)}`);
  }
  const keys = new Set([...expected.metrics.keys(), ...actual.metrics.keys()]);
  for (const key of keys) {
    const e = expected.metrics.get(key) ?? noTotals();
    const a = actual.metrics.get(key) ?? noTotals();
    if (e.events !== a.events || e.conversions !== a.conversions) problems.push(`${key}: events/conversions expected ${e.events}/${e.conversions}, got ${a.events}/${a.conversions}`);
    for (const field of ['sum', 'sumSquares', 'sumY', 'sumSquaresY', 'sumXY'] as const) {
      const scale = Math.max(1, Math.abs(e[field]));
      if (Math.abs(e[field] - a[field]) / scale > relative) problems.push(`${key} ${field}: expected ${e[field]}, got ${a[field]}`);
    }
  }
  return problems;
}

function add(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}
