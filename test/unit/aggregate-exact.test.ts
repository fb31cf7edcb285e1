import { describe, expect, it } from 'vitest';
import { applyEvent } from '../../services/aggregate/applyEvent.ts';
import { DeltaAccumulator, type ExperimentDelta } from '../../services/aggregate/deltaAccumulator.ts';
import { CONFIG_DEFAULTS } from '../../services/common/config.ts';
import { nonFinitePaths } from '../../services/common/numberBounds.ts';
import { decodeUserState, emptyUserState, encodeUserState, type UserState } from '../../services/aggregate/userState.ts';
import { compareTotals, fixtureDefinitions, generateEvents, oracle, sumDeltas } from '../support/aggregationFixture.ts';
import { randomInt, seededRandom } from '../support/random.ts';

describe('aggregation rules against an independent computation', () => {
  it('100,000 events, 10,000 users, 3 experiments (sum, capped, conversion and ratio metrics): counts exact, sums within 1e-9, in random batches with state round-tripped through the changelog encoding', () => {
    const definitions = fixtureDefinitions();
    const byId = new Map(definitions.map((d) => [d.experimentId, d]));
    const events = generateEvents(7, 10_000, 100_000);
    const random = seededRandom(11);
    const states = new Map<string, Buffer>();
    const deltas: ExperimentDelta[] = [];
    let countedEarly = 0;
    for (let start = 0; start < events.length; ) {
      const size = 1 + randomInt(random, 2_000);
      const batch = new DeltaAccumulator();
      const touched = new Map<string, UserState>();
      for (const event of events.slice(start, start + size)) {
        const state = touched.get(event.userId) ?? (states.has(event.userId) ? decodeUserState(states.get(event.userId)!) : emptyUserState());
        countedEarly += applyEvent(state, event, (id) => byId.get(id), batch).filter((o) => o === 'metric_counted_early').length;
        touched.set(event.userId, state);
      }
      for (const [user, state] of touched) states.set(user, encodeUserState(state));
      deltas.push(...batch.deltas());
      start += size;
    }
    const expected = oracle(definitions, events);
    expect(compareTotals(expected, sumDeltas(deltas))).toEqual([]);
    // The data set exercises every rule.
    expect([...expected.users.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(9_000);
    expect([...expected.conflicts.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(50);
    expect([...expected.metrics.values()].some((m) => m.conversions > 100)).toBe(true);
    expect(countedEarly).toBeGreaterThan(1_000);
    // ... the ratio metrics (Σy, Σxy of every variant) and the cap, which binds for many users:
    // without it the oracle's Σx of exp-banner's clicks is larger.
    for (const key of ['exp-search/a/latency_per_click', 'exp-banner/on/latency_per_purchase']) expect(expected.metrics.get(key)!.sumY * expected.metrics.get(key)!.sumXY, key).toBeGreaterThan(0);
    const uncapped = oracle(definitions.map((d) => ({ ...d, definition: { ...d.definition, primaryMetrics: d.definition.primaryMetrics.map((m) => (m.type === 'sum' ? { name: m.name, type: m.type } : m)) } })), events);
    for (const variant of ['off', 'on']) expect(uncapped.metrics.get(`exp-banner/${variant}/clicks`)!.sum - expected.metrics.get(`exp-banner/${variant}/clicks`)!.sum).toBeGreaterThan(1_000);
  });
});

describe('aggregation rules, one at a time', () => {
  const [checkout] = fixtureDefinitions();
  const defs = (id: string) => (id === checkout!.experimentId ? checkout : undefined);
  const t0 = Date.UTC(2026, 10, 20);
  const expose = (variantId: string, eventTime = t0) => ({ kind: 'exposure' as const, eventId: 'x', experimentId: 'exp-checkout', variantId, userId: 'u', eventTime, context: null });
  const metric = (name: string, value: number, eventTime = t0 + 1_000) => ({ kind: 'metric' as const, eventId: 'm', userId: 'u', metric: name, value, eventTime });

  it('updates Σx and Σx² with (x+v)² − x² as a user total grows', () => {
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    applyEvent(state, expose('treatment'), defs, delta);
    applyEvent(state, metric('revenue', 3), defs, delta);
    applyEvent(state, metric('revenue', 4), defs, delta);
    const revenue = delta.deltas()[0]!.variants[0]!.metrics.find((m) => m.metric === 'revenue')!;
    expect(revenue).toEqual({ metric: 'revenue', sum: 7, sumSquares: 49, conversions: 0, events: 2, sumY: 0, sumSquaresY: 0, sumXY: 0 });
  });

  it('counts a conversion once per user, ignores metrics before exposure or after the window, and flags a second variant once', () => {
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    expect(applyEvent(state, metric('purchase', 1, t0 - 1), defs, delta)).toEqual([]);
    expect(applyEvent(state, expose('control'), defs, delta)).toEqual(['exposed']);
    expect(applyEvent(state, metric('purchase', 1, t0 - 1), defs, delta)).toEqual(['metric_unattributed']);
    expect(applyEvent(state, metric('purchase', 1, t0 + 25 * 3_600_000), defs, delta)).toEqual(['metric_unattributed']);
    expect(applyEvent(state, metric('purchase', 1), defs, delta)).toEqual(['metric_counted']);
    expect(applyEvent(state, metric('purchase', 1), defs, delta)).toEqual(['metric_counted']);
    expect(applyEvent(state, expose('treatment'), defs, delta)).toEqual(['conflict']);
    expect(applyEvent(state, expose('treatment'), defs, delta)).toEqual(['conflict']);
    expect(applyEvent(state, expose('control'), defs, delta)).toEqual(['duplicate_exposure']);
    expect(applyEvent(state, expose('nope'), defs, delta)).toEqual(['unknown_variant']);
    const [d] = delta.deltas();
    expect(d!.variants).toEqual([{ variantId: 'control', exposedUsers: 1, conflicts: 1, metrics: [{ metric: 'purchase', sum: 1, sumSquares: 1, conversions: 1, events: 2, sumY: 0, sumSquaresY: 0, sumXY: 0 }] }]);
    expect(d!.buckets.find((b) => b.metric === null)).toEqual({ minute: t0, variantId: 'control', metric: null, count: 1, sum: 0 });
  });

  it('counts a metric that overtook its exposure, within the grace and the per-user cap, and only metrics some experiment uses', () => {
    const policy = { graceMs: 60_000, keep: 2, isExperimentMetric: (m: string) => m !== 'unused' };
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    // Arrive before the exposure: an unused metric, one too old for the grace (by the time the
    // newest event is seen), and three revenue events of which the cap keeps the last two.
    applyEvent(state, metric('unused', 1, t0 + 500), defs, delta, policy);
    applyEvent(state, metric('revenue', 100, t0 + 1_000), defs, delta, policy);
    applyEvent(state, metric('revenue', 1, t0 + 70_000), defs, delta, policy);
    applyEvent(state, metric('revenue', 2, t0 + 70_500), defs, delta, policy);
    applyEvent(state, metric('revenue', 4, t0 + 71_000), defs, delta, policy);
    expect(state.early).toEqual([['revenue', 2, t0 + 70_500], ['revenue', 4, t0 + 71_000]]);
    expect(applyEvent(state, expose('treatment'), defs, delta, policy)).toEqual(['exposed', 'metric_counted_early', 'metric_counted_early']);
    const revenue = delta.deltas()[0]!.variants[0]!.metrics.find((m) => m.metric === 'revenue')!;
    expect(revenue).toEqual({ metric: 'revenue', sum: 6, sumSquares: 36, conversions: 0, events: 2, sumY: 0, sumSquaresY: 0, sumXY: 0 });
    // The kept events survive the changelog encoding.
    expect(decodeUserState(encodeUserState(state))).toEqual(state);
  });

  it('reads changelog records written before early metrics were kept', () => {
    const old = Buffer.from(JSON.stringify([{ 'exp-checkout': ['control', t0, 0] }, { 'exp-checkout\u0000revenue': 5 }]));
    expect(decodeUserState(old)).toEqual({ assignments: { 'exp-checkout': { variant: 'control', exposedAt: t0, conflicted: false } }, totals: { 'exp-checkout\u0000revenue': 5 }, early: [], newest: 0 });
  });

  it('keeps a heavy user finite: 100,000 events at the ingest limit, over batches and the changelog encoding', () => {
    const limit = CONFIG_DEFAULTS.ingest.maxAbsMetricValue;
    let encoded = encodeUserState(emptyUserState());
    const deltas: ExperimentDelta[] = [];
    const outcomes = new Map<string, number>();
    for (let batch = 0; batch < 10; batch++) {
      const state = decodeUserState(encoded);
      const delta = new DeltaAccumulator();
      if (batch === 0) applyEvent(state, expose('treatment'), defs, delta);
      for (let i = 0; i < 10_000; i++) {
        for (const o of applyEvent(state, metric('revenue', i % 2 ? limit : -limit / 2, t0 + 1_000 + i), defs, delta)) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      }
      encoded = encodeUserState(state);
      deltas.push(...delta.deltas());
    }
    expect(Object.fromEntries(outcomes)).toEqual({ metric_counted: 100_000 });
    expect(nonFinitePaths(deltas)).toEqual([]);
    const total = 50_000 * limit - 50_000 * (limit / 2);
    expect(decodeUserState(encoded).totals['exp-checkout\u0000revenue']).toBe(total);
    const revenue = sumDeltas(deltas).metrics.get('exp-checkout/treatment/revenue')!;
    expect(revenue.sum).toBe(total);
    // Σx² telescopes to the final total squared (2.5e32); each step rounds, so within 1e-9 relative.
    expect(Math.abs(revenue.sumSquares - total * total) / (total * total)).toBeLessThan(1e-9);
  });

  it('does not count an event whose sums would not be finite, and leaves the user total as it was (values that bypassed ingest)', () => {
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    applyEvent(state, expose('treatment'), defs, delta);
    // 1e300 is finite, its square is not; ±1e308 likewise; NaN and ∞ are not numbers to add.
    for (const value of [1e300, 1e308, -1e308, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(applyEvent(state, metric('revenue', value), defs, delta), `value ${value}`).toEqual(['value_overflow']);
    }
    expect(state.totals['exp-checkout\u0000revenue']).toBeUndefined();
    // The largest total whose square is still finite is counted; one more step is not.
    expect(applyEvent(state, metric('revenue', 1e154), defs, delta)).toEqual(['metric_counted']);
    expect(applyEvent(state, metric('revenue', 1e154), defs, delta)).toEqual(['value_overflow']);
    expect(state.totals['exp-checkout\u0000revenue']).toBe(1e154);
    // Non-finite values are not kept for a later exposure either (they would become null in the changelog).
    expect(state.early.map(([, value]) => value).every(Number.isFinite)).toBe(true);
    const revenue = delta.deltas()[0]!.variants[0]!.metrics.find((m) => m.metric === 'revenue')!;
    expect(revenue).toEqual({ metric: 'revenue', sum: 1e154, sumSquares: 1e308, conversions: 0, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 });
    expect(nonFinitePaths(delta.deltas())).toEqual([]);
  });

  it('refuses a change that would overflow the batch delta, although each user total alone is finite', () => {
    const delta = new DeltaAccumulator();
    const users = [emptyUserState(), emptyUserState()];
    for (const user of users) applyEvent(user, expose('control'), defs, delta);
    expect(applyEvent(users[0]!, metric('revenue', 1.2e154), defs, delta)).toEqual(['metric_counted']);
    // Alone this user's Σx² change (1.44e308) is finite, but added to the batch's it is not.
    expect(applyEvent(users[1]!, metric('revenue', 1.2e154), defs, delta)).toEqual(['value_overflow']);
    expect(users[1]!.totals['exp-checkout\u0000revenue']).toBeUndefined();
    const [d] = delta.deltas();
    expect(d!.variants[0]!.metrics).toEqual([{ metric: 'revenue', sum: 1.2e154, sumSquares: 1.2e154 * 1.2e154, conversions: 0, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 }]);
    expect(d!.buckets.filter((b) => b.metric === 'revenue')).toEqual([{ minute: t0, variantId: 'control', metric: 'revenue', count: 1, sum: 1.2e154 }]);
  });
});
