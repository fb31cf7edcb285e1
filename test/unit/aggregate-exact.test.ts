import { describe, expect, it } from 'vitest';
import { applyEvent, eventTimePolicy, MAX_HELD_PER_USER } from '../../services/aggregate/applyEvent.ts';
import { definitionStrings } from '../../services/aggregate/definitionStrings.ts';
import { DeltaAccumulator, type ExperimentDelta } from '../../services/aggregate/deltaAccumulator.ts';
import { CONFIG_DEFAULTS } from '../../services/common/config.ts';
import { eventMetrics } from '../../services/common/experimentDefinition.ts';
import { nonFinitePaths } from '../../services/common/numberBounds.ts';
import { emptyUserState, type UserState } from '../../services/aggregate/userState.ts';
import { decodeUserState, encodeUserState } from '../../services/aggregate/userStateCodec.ts';
import { compareTotals, DISORDER_MS, fixtureDefinitions, generateEvents, largestDisorder, oracle, sumDeltas } from '../support/aggregationFixture.ts';
import { replayPartition } from '../support/partitionReplay.ts';
import { userStateStrings } from '../support/userStateStrings.ts';

describe('aggregation rules against an independent computation', () => {
  it('100,000 events, 10,000 users, 3 experiments (sum, capped, conversion and ratio metrics), out of event-time order within the lateness: counts exact, sums within 1e-9, in random batches with restores from the changelog encoding', () => {
    const definitions = fixtureDefinitions();
    const events = generateEvents(7, 10_000, 100_000);
    expect(largestDisorder(events)).toBeGreaterThan(DISORDER_MS / 2);
    expect(largestDisorder(events)).toBeLessThanOrEqual(CONFIG_DEFAULTS.aggregate.latenessMs);
    const { deltas, outcomes, peakHeld } = replayPartition(events, definitions, { seed: 11, restoreEvery: 7 });
    const expected = oracle(definitions, events);
    expect(compareTotals(expected, sumDeltas(deltas))).toEqual([]);
    // The data set exercises every rule.
    expect(outcomes.get('late') ?? 0).toBe(0);
    expect(outcomes.get('metric_counted_early')).toBeGreaterThan(1_000);
    expect(outcomes.get('moved')).toBeGreaterThan(500);
    expect(outcomes.get('metric_recounted')).toBeGreaterThan(10);
    expect([...expected.users.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(9_000);
    expect([...expected.conflicts.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(50);
    expect([...expected.metrics.values()].some((m) => m.conversions > 100)).toBe(true);
    // ... the ratio metrics (Σy, Σxy of every variant) and the cap, which binds for many users:
    // without it the oracle's Σx of exp-banner's clicks is larger.
    for (const key of ['exp-search/a/latency_per_click', 'exp-banner/on/latency_per_purchase']) expect(expected.metrics.get(key)!.sumY * expected.metrics.get(key)!.sumXY, key).toBeGreaterThan(0);
    const uncapped = oracle(definitions.map((d) => ({ ...d, definition: { ...d.definition, primaryMetrics: d.definition.primaryMetrics.map((m) => (m.type === 'sum' ? { name: m.name, type: m.type } : m)) } })), events);
    for (const variant of ['off', 'on']) expect(uncapped.metrics.get(`exp-banner/${variant}/clicks`)!.sum - expected.metrics.get(`exp-banner/${variant}/clicks`)!.sum).toBeGreaterThan(1_000);
    // Memory follows the lateness, not the users: at most the metric events of about one
    // lateness (plus a batch) of the six-hour clock are held at once.
    const perLateness = (events.length * (CONFIG_DEFAULTS.aggregate.latenessMs + DISORDER_MS)) / (6 * 3_600_000);
    expect(peakHeld).toBeLessThan(perLateness + 2_000);
    console.info(`event-time replay: ${outcomes.get('moved')} moves, ${outcomes.get('metric_counted_early')} metric events counted after their late-arriving exposure, ${outcomes.get('metric_recounted')} recounted on a move; at most ${peakHeld} metric events held`);
  }, 120_000);

  it('is the same truth whatever the arrival order within the lateness: exposures and metrics shuffled apart by up to 8 minutes', () => {
    const definitions = fixtureDefinitions();
    const events = generateEvents(8, 3_000, 30_000, 0);
    // Metric events held back: each arrives 8 minutes of the clock after its place (as if their raw topic ran behind).
    const heldBack = [...events].map((e, i) => ({ e, at: e.kind === 'metric' ? i + Math.floor((8 * 60_000 * events.length) / (6 * 3_600_000)) : i })).sort((a, b) => a.at - b.at).map(({ e }) => e);
    expect(largestDisorder(heldBack)).toBeGreaterThan(7 * 60_000);
    const { deltas, outcomes } = replayPartition(heldBack, definitions, { seed: 3, restoreEvery: 5 });
    expect(outcomes.get('late') ?? 0).toBe(0);
    expect(compareTotals(oracle(definitions, events), sumDeltas(deltas))).toEqual([]);
  });

  it('does not take events behind the watermark: they are late, and the stream then differs from the truth by exactly them', () => {
    const definitions = fixtureDefinitions();
    const events = generateEvents(9, 2_000, 20_000, 0);
    const lag = Math.floor((20 * 60_000 * events.length) / (6 * 3_600_000));
    const heldBack = [...events].map((e, i) => ({ e, at: e.kind === 'metric' ? i + lag : i })).sort((a, b) => a.at - b.at).map(({ e }) => e);
    const { deltas, outcomes } = replayPartition(heldBack, definitions, { seed: 4, latenessMs: 60_000 });
    const late = outcomes.get('late') ?? 0;
    expect(late).toBeGreaterThan(1_000);
    // Which ones were late follows from the order alone: the truth without them is what the stream has.
    let newest = Number.NEGATIVE_INFINITY;
    const taken = heldBack.filter((e) => {
      const isLate = e.eventTime < newest - 60_000;
      newest = Math.max(newest, isLate ? newest : e.eventTime);
      return !isLate;
    });
    expect(heldBack.length - taken.length).toBe(late);
    expect(compareTotals(oracle(definitions, taken), sumDeltas(deltas))).toEqual([]);
    expect(compareTotals(oracle(definitions, events), sumDeltas(deltas)).length).toBeGreaterThan(0);
  });
});

describe('the strings of per-user state', () => {
  it('are all among those the definitions give a restore to number up front (definitionStrings), whatever events arrive', () => {
    const definitions = fixtureDefinitions();
    const byId = new Map(definitions.map((d) => [d.experimentId, d]));
    const listed = definitionStrings(definitions.map((d) => d.definition));
    expect(new Set(listed).size, 'each string once').toBe(listed.length);
    const users = new Map<string, UserState>();
    const delta = new DeltaAccumulator();
    // As the aggregator does: only metric events some experiment reads are held (the fixture has others too).
    const experimentMetrics = new Set(definitions.flatMap((d) => [...eventMetrics(d.definition)]));
    const policy = eventTimePolicy(undefined, (metric) => experimentMetrics.has(metric));
    for (const event of generateEvents(23, 400, 12_000)) {
      let state = users.get(event.userId);
      if (!state) users.set(event.userId, (state = emptyUserState()));
      applyEvent(state, event, (id) => byId.get(id), delta, policy);
    }
    const met = userStateStrings(users.values());
    // Every kind of string was met (assignments, sum/conversion and ratio totals, held events), and each is listed.
    expect([...met].filter((value) => value.endsWith('\u0000y')).length).toBeGreaterThan(0);
    expect([...met].filter((value) => !listed.includes(value))).toEqual([]);
    // The order is the same whatever order the definitions come in.
    expect(definitionStrings(definitions.map((d) => d.definition).reverse())).toEqual(listed);
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

  it('counts a conversion once per user, flags a second variant once, and attributes by [exposure, exposure + window): start in, end out', () => {
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    const window = 24 * 3_600_000;
    expect(applyEvent(state, metric('purchase', 1, t0 - 1), defs, delta)).toEqual([]);
    expect(applyEvent(state, expose('control'), defs, delta)).toEqual(['exposed']);
    expect(applyEvent(state, metric('purchase', 1, t0 - 1), defs, delta)).toEqual(['metric_unattributed']);
    expect(applyEvent(state, metric('purchase', 1, t0 + window), defs, delta)).toEqual(['metric_unattributed']);
    expect(applyEvent(state, metric('revenue', 5, t0 + window), defs, delta)).toEqual(['metric_unattributed']);
    expect(applyEvent(state, metric('revenue', 3, t0 + window - 1), defs, delta)).toEqual(['metric_counted']);
    expect(applyEvent(state, metric('revenue', 2, t0), defs, delta)).toEqual(['metric_counted']);
    expect(applyEvent(state, metric('purchase', 1), defs, delta)).toEqual(['metric_counted']);
    expect(applyEvent(state, metric('purchase', 1), defs, delta)).toEqual(['metric_counted']);
    expect(applyEvent(state, expose('treatment', t0 + 1), defs, delta)).toEqual(['conflict']);
    expect(applyEvent(state, expose('treatment', t0 + 2), defs, delta)).toEqual(['conflict']);
    expect(applyEvent(state, expose('control', t0 + 3), defs, delta)).toEqual(['duplicate_exposure']);
    expect(applyEvent(state, expose('nope'), defs, delta)).toEqual(['unknown_variant']);
    const [d] = delta.deltas();
    expect(d!.variants).toEqual([{ variantId: 'control', exposedUsers: 1, conflicts: 1, metrics: [
      { metric: 'revenue', sum: 5, sumSquares: 25, conversions: 0, events: 2, sumY: 0, sumSquaresY: 0, sumXY: 0 },
      { metric: 'purchase', sum: 1, sumSquares: 1, conversions: 1, events: 2, sumY: 0, sumSquaresY: 0, sumXY: 0 },
    ] }]);
    expect(d!.buckets.find((b) => b.metric === null)).toEqual({ minute: t0, variantId: 'control', metric: null, count: 1, sum: 0 });
  });

  it('counts metric events that arrived before their exposure, held until the watermark passes them, and holds only metrics some experiment uses', () => {
    const policy = eventTimePolicy({ latenessMs: 60_000 }, (m) => m !== 'unused');
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    // Arrive before the exposure (at t0): an unused metric, one the watermark passes before the
    // exposure comes, one before the exposure's time, and three in its window.
    applyEvent(state, metric('unused', 1, t0 + 500), defs, delta, policy, undefined, t0 - 60_000);
    applyEvent(state, metric('revenue', 100, t0 - 30_000), defs, delta, policy, undefined, t0 - 90_000);
    applyEvent(state, metric('revenue', 50, t0 - 1), defs, delta, policy, undefined, t0 - 60_000);
    for (const [value, at] of [[1, t0 + 1_000], [2, t0 + 1_500], [4, t0]] as const) applyEvent(state, metric('revenue', value, at), defs, delta, policy, undefined, t0 - 60_000);
    expect(state.held.map(([, value]) => value)).toEqual([100, 50, 4, 1, 2]); // in event-time order
    // The watermark has passed the first: it is let go when the exposure comes, the rest count.
    expect(applyEvent(state, expose('treatment'), defs, delta, policy, undefined, t0 - 20_000)).toEqual(['exposed', 'metric_counted_early', 'metric_counted_early', 'metric_counted_early']);
    expect(state.held.map(([, value]) => value)).toEqual([50, 4, 1, 2]);
    const revenue = delta.deltas()[0]!.variants[0]!.metrics.find((m) => m.metric === 'revenue')!;
    expect(revenue).toEqual({ metric: 'revenue', sum: 7, sumSquares: 49, conversions: 0, events: 3, sumY: 0, sumSquaresY: 0, sumXY: 0 });
    // The held events survive the changelog encoding.
    expect(decodeUserState(encodeUserState(state))).toEqual(state);
  });

  it('moves a user when an earlier exposure arrives later: the whole contribution leaves the old variant and is recomputed under the new one', () => {
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    const apply = (event: Parameters<typeof applyEvent>[1]) => applyEvent(state, event, defs, delta, eventTimePolicy(), undefined, t0 - 600_000);
    expect(apply(expose('control', t0 + 10_000))).toEqual(['exposed']);
    expect(apply(metric('revenue', 3, t0 + 5_000))).toEqual(['metric_unattributed']); // before the control exposure
    expect(apply(metric('revenue', 4, t0 + 20_000))).toEqual(['metric_counted']);
    expect(apply(metric('purchase', 1, t0 + 20_000))).toEqual(['metric_counted']);
    // The treatment exposure happened first: the user moves, and is now in two variants.
    expect(apply(expose('treatment', t0))).toEqual(['moved', 'metric_recounted', 'metric_recounted', 'metric_recounted']);
    // An exposure at the same time to a smaller variant id wins the tie; a larger one does not.
    expect(apply(expose('treatment', t0))).toEqual(['duplicate_exposure']);
    const net = sumDeltas(delta.deltas());
    expect(net.users.get('exp-checkout/control')).toBe(0);
    expect(net.users.get('exp-checkout/treatment')).toBe(1);
    expect(net.conflicts.get('exp-checkout/control')).toBe(0);
    expect(net.conflicts.get('exp-checkout/treatment')).toBe(1);
    expect(net.metrics.get('exp-checkout/control/revenue')).toEqual({ sum: 0, sumSquares: 0, conversions: 0, events: 0, sumY: 0, sumSquaresY: 0, sumXY: 0 });
    expect(net.metrics.get('exp-checkout/treatment/revenue')).toEqual({ sum: 7, sumSquares: 49, conversions: 0, events: 2, sumY: 0, sumSquaresY: 0, sumXY: 0 });
    expect(net.metrics.get('exp-checkout/control/purchase')!.conversions).toBe(0);
    expect(net.metrics.get('exp-checkout/treatment/purchase')!.conversions).toBe(1);
    expect(state.assignments['exp-checkout']).toEqual({ variant: 'treatment', exposedAt: t0, conflicted: true });
    expect(state.totals['exp-checkout\u0000revenue']).toBe(7);
    // The minute buckets move too: the control exposure's bucket nets to zero.
    const buckets = delta.deltas()[0]!.buckets;
    expect(buckets.filter((b) => b.variantId === 'control').every((b) => b.count === 0 && b.sum === 0)).toBe(true);
  });

  it('breaks a tie of exposure times by the smaller variant id, and moves within a variant when only the time is earlier', () => {
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    const apply = (event: Parameters<typeof applyEvent>[1]) => applyEvent(state, event, defs, delta, eventTimePolicy(), undefined, t0 - 600_000);
    expect(apply(expose('treatment', t0))).toEqual(['exposed']);
    expect(apply(expose('control', t0))).toEqual(['moved']); // 'control' < 'treatment'
    expect(apply(metric('revenue', 2, t0 - 500))).toEqual(['metric_unattributed']);
    expect(apply(expose('control', t0 - 1_000))).toEqual(['moved', 'metric_recounted']);
    const net = sumDeltas(delta.deltas());
    expect([net.users.get('exp-checkout/control'), net.users.get('exp-checkout/treatment')]).toEqual([1, 0]);
    expect([net.conflicts.get('exp-checkout/control'), net.conflicts.get('exp-checkout/treatment')]).toEqual([1, 0]);
    expect(net.metrics.get('exp-checkout/control/revenue')!.sum).toBe(2);
  });

  it('reads changelog records written before held metrics (and those of step 11, whose early metrics are held alike)', () => {
    const old = Buffer.from(JSON.stringify([{ 'exp-checkout': ['control', t0, 0] }, { 'exp-checkout\u0000revenue': 5 }]));
    expect(decodeUserState(old)).toEqual({ assignments: { 'exp-checkout': { variant: 'control', exposedAt: t0, conflicted: false } }, totals: { 'exp-checkout\u0000revenue': 5 }, held: [], newest: 0 });
    const step11 = Buffer.from(JSON.stringify([{}, {}, [['revenue', 2, t0]], t0]));
    expect(decodeUserState(step11)).toEqual({ assignments: {}, totals: {}, held: [['revenue', 2, t0]], newest: t0 });
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
        for (const o of applyEvent(state, metric('revenue', i % 2 ? limit : -limit / 2, t0 + 1_000 + batch * 10_000 + i), defs, delta)) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      }
      encoded = encodeUserState(state);
      deltas.push(...delta.deltas());
    }
    // One user's held events are bounded (hostile input): the earliest beyond the bound are let go, and said so.
    expect(Object.fromEntries(outcomes)).toEqual({ metric_counted: 100_000, held_overflow: 100_000 - MAX_HELD_PER_USER });
    expect(decodeUserState(encoded).held).toHaveLength(MAX_HELD_PER_USER);
    expect(encoded.length).toBeLessThan(1024 * 1024);
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
    expect(state.held.map(([, value]) => value).every(Number.isFinite)).toBe(true);
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
