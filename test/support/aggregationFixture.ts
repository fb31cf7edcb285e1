import type { ExposureEvent } from '../../services/common/contracts/exposures.ts';
import type { MetricEvent } from '../../services/common/contracts/metrics.ts';
import { parseDefinition, type ExperimentDefinition, type PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import type { ExperimentDelta } from '../../services/aggregate/deltaAccumulator.ts';
import { randomInt, seededRandom } from './random.ts';
import type { MetricStatistics } from '../../services/stats/metricStatistics.ts';
import type { PipelineEvent } from '../../services/common/contracts/pipelineEvent.ts';

/**
 * A reproducible data set for the aggregator and an independent, straightforward
 * computation of what it should produce (the oracle): per user, take the events in order,
 * find the first exposure per experiment, and compute each metric's user value from the
 * attributed events afterwards, plus the early ones (arrived before the exposure, still kept
 * then: among the user's last `keep` kept metric events, within `graceMs` of the newest event
 * time), then sum over users. No incremental updates, no deltas. A capped metric's user value
 * is min(total, cap) of the final total; a ratio metric's x and y are the user's totals of its
 * numerator and denominator events.
 */
export const EARLY = { graceMs: 120_000, keep: 8 };
export const BASE_TIME = Date.UTC(2026, 10, 20);

export function fixtureDefinitions(): PublishedDefinition[] {
  const defs: ExperimentDefinition[] = [
    { id: 'exp-checkout', name: 'Checkout', hypothesis: 'h', owner: 'o', variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }], primaryMetrics: [{ name: 'purchase', type: 'conversion' }, { name: 'revenue', type: 'sum' }], guardrailMetrics: [], attributionWindowHours: 24, plannedSampleSize: 5000 },
    { id: 'exp-search', name: 'Search', hypothesis: 'h', owner: 'o', variants: [{ id: 'a', weight: 0.34 }, { id: 'b', weight: 0.33 }, { id: 'c', weight: 0.33 }], primaryMetrics: [{ name: 'clicks', type: 'sum' }], guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.1 } }, { name: 'latency_per_click', type: 'ratio', numerator: 'latency', denominator: 'clicks', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.2 } }], attributionWindowHours: 1, plannedSampleSize: 5000 },
    { id: 'exp-banner', name: 'Banner', hypothesis: 'h', owner: 'o', variants: [{ id: 'off', weight: 0.5 }, { id: 'on', weight: 0.5 }], primaryMetrics: [{ name: 'revenue', type: 'sum' }, { name: 'clicks', type: 'sum', cap: { upper: 60 } }, { name: 'latency_per_purchase', type: 'ratio', numerator: 'latency', denominator: 'purchase' }], guardrailMetrics: [{ name: 'purchase', type: 'conversion', harmfulDirection: 'decrease', tolerance: { kind: 'absolute', value: 0.01 } }], attributionWindowHours: 48, plannedSampleSize: 5000 },
  ].map((d) => parseDefinition(d, 'fixture'));
  return defs.map((definition, i) => ({ experimentId: definition.id, version: i + 1, appliedAt: BASE_TIME, definition }));
}

export function generateEvents(seed: number, users: number, total: number): PipelineEvent[] {
  const random = seededRandom(seed);
  const defs = fixtureDefinitions();
  const events: PipelineEvent[] = [];
  const exposedAt = new Map<string, number>();
  const metrics = ['purchase', 'revenue', 'clicks', 'latency', 'not-in-any-experiment'];
  for (let i = 0; i < total; i++) {
    const userId = `user-${randomInt(random, users)}`;
    const roll = random();
    if (roll < 0.3) {
      const def = random() < 0.03 ? undefined : defs[randomInt(random, defs.length)]!.definition;
      const experimentId = def?.id ?? 'exp-unknown';
      const variants = def?.variants.map((v) => v.id) ?? ['x'];
      // Mostly a stable variant per user; sometimes another one (a conflict) or an unknown one.
      const stable = variants[Number(userId.slice(5)) % variants.length]!;
      const variantId = random() < 0.02 ? variants[randomInt(random, variants.length)]! : random() < 0.01 ? 'not-a-variant' : stable;
      const eventTime = BASE_TIME + randomInt(random, 3_600_000 * 6);
      exposedAt.set(userId, Math.min(exposedAt.get(userId) ?? Infinity, eventTime));
      // Sometimes the user's next metric event overtakes this exposure (it arrives first,
      // though it happened a little later): an early metric.
      if (random() < 0.1 && i + 1 < total) {
        const metric = metrics[randomInt(random, metrics.length - 1)]!;
        events.push({ kind: 'metric' as const, eventId: `m${i}`, userId, metric, value: metric === 'purchase' ? 1 : Math.round(random() * 10_000) / 100, eventTime: eventTime + randomInt(random, 90_000) });
        i++;
      }
      events.push({ kind: 'exposure' as const, eventId: `x${i}`, experimentId, variantId, userId, eventTime, context: null });
    } else {
      const base = exposedAt.get(userId) ?? BASE_TIME;
      // Mostly within an hour after exposure; some before it, some days later (out of window).
      const offset = random() < 0.05 ? -randomInt(random, 3_600_000) : random() < 0.1 ? randomInt(random, 3 * 86_400_000) : randomInt(random, 3_600_000);
      const metric = metrics[randomInt(random, metrics.length)]!;
      const value = metric === 'purchase' ? 1 : Math.round(random() * 10_000) / 100 - (metric === 'latency' ? 0 : 5);
      events.push({ kind: 'metric' as const, eventId: `m${i}`, userId, metric, value, eventTime: base + offset });
    }
  }
  return events;
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
  const experimentMetrics = new Set(definitions.flatMap(({ definition }) => [...definition.primaryMetrics, ...definition.guardrailMetrics].flatMap(eventsRead)));
  const byUser = new Map<string, PipelineEvent[]>();
  for (const e of events) byUser.set(e.userId, [...(byUser.get(e.userId) ?? []), e]);
  for (const userEvents of byUser.values()) {
    const keptAt = keptBeforeEach(userEvents, experimentMetrics);
    for (const { definition } of definitions) {
      const variants = new Set(definition.variants.map((v) => v.id));
      const exposures = userEvents.map((e, index) => ({ e, index })).filter(({ e }) => 'experimentId' in e && e.experimentId === definition.id && variants.has(e.variantId));
      const first = exposures[0];
      if (!first) continue;
      const variant = (first.e as ExposureEvent).variantId;
      const exposedAt = first.e.eventTime;
      add(totals.users, `${definition.id}/${variant}`, 1);
      if (exposures.some(({ e }) => (e as ExposureEvent).variantId !== variant)) add(totals.conflicts, `${definition.id}/${variant}`, 1);
      const metricDefs = [...definition.primaryMetrics, ...definition.guardrailMetrics];
      const inWindow = (e: MetricEvent) => e.eventTime >= exposedAt && e.eventTime <= exposedAt + definition.attributionWindowHours * 3_600_000;
      for (const m of metricDefs) {
        const names = eventsRead(m);
        const early = keptAt[first.index]!.filter((e) => names.includes(e.metric) && inWindow(e));
        const after = userEvents.filter((e, index) => index > first.index && 'metric' in e && names.includes(e.metric) && inWindow(e)) as MetricEvent[];
        const attributed = [...early, ...after];
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

/** For each of a user's events, the metric events kept as early metrics when it is handled. */
function keptBeforeEach(userEvents: PipelineEvent[], experimentMetrics: Set<string>): MetricEvent[][] {
  let newest = 0;
  let kept: MetricEvent[] = [];
  return userEvents.map((e) => {
    newest = Math.max(newest, e.eventTime);
    kept = kept.filter((k) => k.eventTime >= newest - EARLY.graceMs);
    const snapshot = kept;
    if ('metric' in e && experimentMetrics.has(e.metric) && e.eventTime >= newest - EARLY.graceMs) kept = [...kept, e].slice(-EARLY.keep);
    return snapshot;
  });
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
