import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { applyEvent } from '../../services/aggregate/applyEvent.ts';
import { DeltaAccumulator } from '../../services/aggregate/deltaAccumulator.ts';
import { emptyUserState } from '../../services/aggregate/userState.ts';
import { decodeUserState, encodeUserState } from '../../services/aggregate/userStateCodec.ts';
import { aggregates } from '../../services/common/contracts/aggregates.ts';
import { definitionChanges } from '../../services/common/definitionChanges.ts';
import { eventMetrics, parseDefinition, type PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import { liveResults } from '../../services/control/liveResults.ts';
import { checkInput } from '../../services/guard/checks/guardCheck.ts';
import { guardrailRegression } from '../../services/guard/checks/guardrailRegression.ts';
import { emptyExperimentState } from '../../services/guard/experimentState.ts';
import { oneSidedDifferenceBound } from '../../services/stats/confidenceSequence.ts';
import { add, emptyStatistics, toSummary, type MetricStatistics } from '../../services/stats/metricStatistics.ts';
import { ratioOfMeans } from '../../services/stats/ratioOfMeans.ts';
import { randomInt, seededRandom } from '../support/random.ts';

// Ratio metrics (delta method) and capped metrics, against computations written out here from
// the raw per-user values: two-pass sample moments for the delta method, min(x, cap) per user
// for the cap. Precision: relative 1e-9 (the streamed sums are added in another order).

/** Direct delta method from raw pairs: R = x̄/ȳ, Var(R̂)·n = (s_x² − 2R s_xy + R² s_y²) / ȳ², moments in two passes. */
function directRatio(pairs: [number, number][]): { ratio: number; variance: number } {
  const n = pairs.length;
  const mx = pairs.reduce((s, [x]) => s + x, 0) / n;
  const my = pairs.reduce((s, [, y]) => s + y, 0) / n;
  let sxx = 0;
  let syy = 0;
  let sxy = 0;
  for (const [x, y] of pairs) {
    sxx += (x - mx) * (x - mx);
    syy += (y - my) * (y - my);
    sxy += (x - mx) * (y - my);
  }
  const [vx, vy, cxy] = [sxx / (n - 1), syy / (n - 1), sxy / (n - 1)];
  const r = mx / my;
  return { ratio: r, variance: (vx - 2 * r * cxy + r * r * vy) / (my * my) };
}

const close = (a: number, b: number, relative = 1e-9) => Math.abs(a - b) <= relative * Math.max(1, Math.abs(b));

/** Per-user pairs (x errors, y requests), errors about 5 % of requests. */
function pairs(random: () => number, n: number, errorRate = 0.05): [number, number][] {
  return Array.from({ length: n }, () => {
    const y = 1 + randomInt(random, 40);
    let x = 0;
    for (let i = 0; i < y; i++) if (random() < errorRate) x += 1;
    return [x, y];
  });
}

/** The sufficient statistics of pairs as the aggregator builds them: one event at a time, each moving x or y of one user. */
function streamed(users: [number, number][]): MetricStatistics {
  const s = emptyStatistics();
  for (const [x, y] of users) {
    let [cx, cy] = [0, 0];
    for (const [dx, dy] of [[x, 0], [0, y]] as const) {
      const [nx, ny] = [cx + dx, cy + dy];
      add(s, { sum: nx - cx, sumSquares: nx * nx - cx * cx, conversions: 0, events: 1, sumY: ny - cy, sumSquaresY: ny * ny - cy * cy, sumXY: nx * ny - cx * cy });
      [cx, cy] = [nx, ny];
    }
  }
  return s;
}

describe('ratio of means, delta method', () => {
  it('ratio and variance from the additive sums match the direct computation from raw per-user pairs', () => {
    const random = seededRandom(2024);
    for (let trial = 0; trial < 50; trial++) {
      const users = pairs(random, 2 + randomInt(random, 3_000));
      const s = streamed(users);
      const got = ratioOfMeans({ users: users.length, sumX: s.sum, sumSquaresX: s.sumSquares, sumY: s.sumY, sumSquaresY: s.sumSquaresY, sumXY: s.sumXY });
      const want = directRatio(users);
      expect(close(got.ratio, want.ratio), `trial ${trial} ratio`).toBe(true);
      expect(close(got.variance, want.variance, 1e-8), `trial ${trial} variance ${got.variance} vs ${want.variance}`).toBe(true);
      // The same through the one statistics module (toSummary of a ratio metric).
      const summary = toSummary({ users: users.length, metrics: { epr: s } }, { name: 'epr', type: 'ratio' });
      expect(summary.mean).toBe(got.ratio);
      expect(summary.variance).toBe(got.variance);
    }
  });

  it('a hand-computed case: (x, y) = (1, 2), (2, 2), (0, 4), (3, 4)', () => {
    // R = 6/12 = 0.5; residuals x − 0.5y = 0, 1, −2, 1: Σ² = 6; ȳ = 3: variance 6 / (3 · 9) = 2/9.
    const r = ratioOfMeans({ users: 4, sumX: 6, sumSquaresX: 14, sumY: 12, sumSquaresY: 40, sumXY: 18 });
    expect(r.ratio).toBe(0.5);
    expect(r.variance).toBeCloseTo(2 / 9, 15);
    expect(directRatio([[1, 2], [2, 2], [0, 4], [3, 4]]).variance).toBeCloseTo(2 / 9, 15);
  });

  it('cannot be estimated without a denominator or under two users: NaN, and the difference tests say why', () => {
    expect(ratioOfMeans({ users: 5, sumX: 1, sumSquaresX: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 }).ratio).toBeNaN();
    expect(ratioOfMeans({ users: 1, sumX: 1, sumSquaresX: 1, sumY: 2, sumSquaresY: 4, sumXY: 2 })).toMatchObject({ ratio: 0.5, variance: Number.NaN });
    const none = toSummary({ users: 10, metrics: {} }, { name: 'epr', type: 'ratio' });
    expect(oneSidedDifferenceBound(none, none, { alpha: 0.05, side: 'lower', plannedUsersPerVariant: 100 })).toMatchObject({ ok: false, reason: 'UNDEFINED_MEAN' });
  });

  it('the guardrail bound on a ratio uses the ratios and the delta-method variances', () => {
    const random = seededRandom(7);
    const [c, t] = [pairs(random, 4_000, 0.05), pairs(random, 4_000, 0.08)];
    const bound = oneSidedDifferenceBound(toSummary({ users: c.length, metrics: { epr: streamed(c) } }, { name: 'epr', type: 'ratio' }), toSummary({ users: t.length, metrics: { epr: streamed(t) } }, { name: 'epr', type: 'ratio' }), { alpha: 0.025, side: 'lower', plannedUsersPerVariant: 5_000 });
    const [dc, dt] = [directRatio(c), directRatio(t)];
    const direct = oneSidedDifferenceBound({ users: c.length, mean: dc.ratio, variance: dc.variance }, { users: t.length, mean: dt.ratio, variance: dt.variance }, { alpha: 0.025, side: 'lower', plannedUsersPerVariant: 5_000 });
    expect(bound.ok && direct.ok).toBe(true);
    if (!bound.ok || !direct.ok) return;
    expect(close(bound.difference, dt.ratio - dc.ratio)).toBe(true);
    expect(close(bound.variance, dc.variance / c.length + dt.variance / t.length, 1e-8)).toBe(true);
    expect(close(bound.bound, direct.bound, 1e-8)).toBe(true);
  });
});

describe('a ratio guardrail in the guard', () => {
  const published = (): PublishedDefinition => ({
    experimentId: 'e', version: 3, appliedAt: 0,
    definition: parseDefinition({
      id: 'e', name: 'e', hypothesis: 'h', owner: 'o', variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
      primaryMetrics: [{ name: 'revenue', type: 'sum' }],
      guardrailMetrics: [{ name: 'errors_per_request', type: 'ratio', numerator: 'errors', denominator: 'requests', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.1 } }],
      minimumSampleSize: 100, plannedSampleSize: 5_000,
    }, 'test'),
  });
  const stateOf = (control: [number, number][], treatment: [number, number][]) => {
    const s = emptyExperimentState('e');
    for (const [id, users] of [['control', control], ['treatment', treatment]] as const) s.variants[id] = { users: users.length, conflicts: 0, metrics: { errors_per_request: streamed(users) }, exposuresByMinute: {} };
    return s;
  };

  it('halts when the error rate per request rises beyond the tolerance, not when it stays', () => {
    const random = seededRandom(99);
    const [signal] = guardrailRegression.signals(checkInput(stateOf(pairs(random, 4_000, 0.05), pairs(random, 4_000, 0.08)), published()));
    expect(signal).toMatchObject({ type: 'GUARDRAIL_REGRESSION', halt: true, variantId: 'treatment', metric: 'errors_per_request' });
    expect(signal!.evidence.controlMean as number).toBeCloseTo(0.05, 2);
    expect(signal!.evidence.treatmentMean as number).toBeCloseTo(0.08, 2);
    expect(guardrailRegression.signals(checkInput(stateOf(pairs(random, 4_000, 0.05), pairs(random, 4_000, 0.05)), published()))).toEqual([]);
  });
});

describe('a ratio metric in the live results', () => {
  it('shows the ratio of means with its delta-method interval, and the difference against control', () => {
    const definition = parseDefinition({ id: 'e', name: 'e', hypothesis: 'h', owner: 'o', variants: [{ id: 'c', weight: 0.5 }, { id: 't', weight: 0.5 }], primaryMetrics: [{ name: 'epr', type: 'ratio', numerator: 'errors', denominator: 'requests' }], plannedSampleSize: 100 }, 'test');
    const c: [number, number][] = [[1, 2], [2, 2], [0, 4], [3, 4]];
    const t: [number, number][] = [[2, 2], [2, 2], [1, 4], [3, 4]];
    const totals = { variants: Object.fromEntries([['c', c], ['t', t]].map(([id, users]) => [id, { users: users!.length, conflicts: 0, exposuresByMinute: {}, metrics: { epr: streamed(users as [number, number][]) } }])) };
    const r = liveResults('e', { experimentId: 'e', version: 1, appliedAt: 0, definition }, totals, undefined);
    const [mc, mt] = [r.variants[0]!.metrics[0]!, r.variants[1]!.metrics[0]!];
    expect(mc).toMatchObject({ metric: 'epr', type: 'ratio', users: 4, mean: 0.5 });
    // Variance 2/9 per user (the hand-computed case above): half-width 1.959964 · √(2/9 / 4).
    expect(mc.interval95![1] - 0.5).toBeCloseTo(1.959964 * Math.sqrt(2 / 9 / 4), 5);
    expect(mt.mean).toBeCloseTo(8 / 12, 15);
    expect(mt.versusControl!.difference).toBeCloseTo(8 / 12 - 0.5, 15);
  });
});

describe('definitions of ratio and capped metrics', () => {
  const base = { id: 'e', name: 'e', hypothesis: 'h', owner: 'o', variants: [{ id: 'a', weight: 0.5 }, { id: 'b', weight: 0.5 }], plannedSampleSize: 100 };

  it('accept a capped sum metric and a ratio naming its numerator and denominator events', () => {
    const d = parseDefinition({ ...base, primaryMetrics: [{ name: 'revenue', type: 'sum', cap: { upper: 1000 } }, { name: 'errors_per_request', type: 'ratio', numerator: 'errors', denominator: 'requests' }], guardrailMetrics: [{ name: 'latency', type: 'sum', cap: { upper: 5_000 }, harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.1 } }] }, 'test');
    expect(d.primaryMetrics).toEqual([{ name: 'revenue', type: 'sum', cap: { upper: 1000 } }, { name: 'errors_per_request', type: 'ratio', numerator: 'errors', denominator: 'requests' }]);
    expect([...eventMetrics(d)].sort()).toEqual(['errors', 'latency', 'requests', 'revenue']);
  });

  it('refuse a cap that is not positive, a cap on a conversion or ratio, a ratio without its parts or of one event over itself', () => {
    const refused = (metric: Record<string, unknown>) => () => parseDefinition({ ...base, primaryMetrics: [metric] }, 'test');
    expect(refused({ name: 'r', type: 'sum', cap: { upper: 0 } })).toThrow(/primaryMetrics\.0\.cap\.upper: a cap must be positive/);
    expect(refused({ name: 'r', type: 'sum', cap: { upper: 1e16 } })).toThrow(/cap\.upper: at most 1000000000000000/);
    expect(refused({ name: 'r', type: 'sum', cap: { lower: 1 } })).toThrow(/unknown field\(s\) lower/);
    expect(refused({ name: 'p', type: 'conversion', cap: { upper: 1 } })).toThrow(/unknown field\(s\) cap/);
    expect(refused({ name: 'q', type: 'ratio', numerator: 'a', denominator: 'b', cap: { upper: 1 } })).toThrow(/unknown field\(s\) cap/);
    expect(refused({ name: 'q', type: 'ratio', numerator: 'a' })).toThrow(/primaryMetrics\.0\.denominator/);
    expect(refused({ name: 'q', type: 'ratio', numerator: 'a', denominator: 'a' })).toThrow(/denominator: must differ from the numerator/);
  });

  it('a changed cap, numerator or denominator invalidates a running experiment, in a guardrail too', () => {
    const guardrail = (extra: Record<string, unknown>) => parseDefinition({ ...base, primaryMetrics: [{ name: 'r', type: 'sum' }], guardrailMetrics: [{ name: 'g', type: 'ratio', numerator: 'a', denominator: 'b', harmfulDirection: 'increase', tolerance: { kind: 'absolute', value: 1 }, ...extra }] }, 'test');
    expect(definitionChanges(guardrail({}), guardrail({ denominator: 'c' }))).toEqual([{ field: 'guardrailMetrics.g.metric', invalidates: true }]);
    expect(definitionChanges(guardrail({}), guardrail({ tolerance: { kind: 'absolute', value: 2 } }))).toEqual([{ field: 'guardrailMetrics.g.tolerance', invalidates: false }]);
    const primary = (cap: number) => parseDefinition({ ...base, primaryMetrics: [{ name: 'r', type: 'sum', cap: { upper: cap } }] }, 'test');
    expect(definitionChanges(primary(10), primary(20))).toEqual([{ field: 'primaryMetrics', invalidates: true }]);
  });
});

describe('capped and ratio metrics in the aggregator', () => {
  const t0 = Date.UTC(2026, 10, 20);
  const published: PublishedDefinition = {
    experimentId: 'e', version: 1, appliedAt: t0,
    definition: parseDefinition({
      id: 'e', name: 'e', hypothesis: 'h', owner: 'o', variants: [{ id: 'a', weight: 0.5 }, { id: 'b', weight: 0.5 }],
      primaryMetrics: [{ name: 'revenue', type: 'sum', cap: { upper: 100 } }, { name: 'revenue_per_visit', type: 'ratio', numerator: 'revenue', denominator: 'visits' }],
      plannedSampleSize: 100,
    }, 'test'),
  };
  const defs = (id: string) => (id === 'e' ? published : undefined);
  const expose = (userId: string) => ({ kind: 'exposure' as const, eventId: 'x', experimentId: 'e', variantId: 'a', userId, eventTime: t0, context: null });
  const metric = (userId: string, name: string, value: number, at = 1) => ({ kind: 'metric' as const, eventId: 'm', userId, metric: name, value, eventTime: t0 + at });

  it('sums min(user total, cap) and its square, and a ratio of the same events, against a naive computation from the users\' final totals', () => {
    const random = seededRandom(31);
    const users = Array.from({ length: 300 }, (_, i) => `u${i}`);
    let encoded = new Map(users.map((u) => [u, encodeUserState(emptyUserState())]));
    const totals = new Map(users.map((u) => [u, { revenue: 0, visits: 0 }]));
    const sums = emptyStatistics();
    const ratioSums = emptyStatistics();
    for (let batch = 0; batch < 5; batch++) {
      const delta = new DeltaAccumulator();
      const next = new Map<string, Buffer>();
      for (const u of users) {
        const state = decodeUserState(encoded.get(u)!);
        if (batch === 0) applyEvent(state, expose(u), defs, delta);
        for (let k = randomInt(random, 4); k > 0; k--) {
          const [name, value] = random() < 0.5 ? ['revenue', Math.round(random() * 8_000) / 100 - 10] : ['visits', 1 + randomInt(random, 3)];
          expect(applyEvent(state, metric(u, name as string, value as number, 1 + batch), defs, delta)).toEqual(['metric_counted']);
          totals.get(u)![name as 'revenue' | 'visits'] += value as number;
        }
        next.set(u, encodeUserState(state));
      }
      encoded = next;
      for (const d of delta.deltas()) for (const v of d.variants) for (const m of v.metrics) if (m.metric === 'revenue') add(sums, m);
      // The ratio's sums in their own accumulator.
      for (const d of delta.deltas()) for (const v of d.variants) for (const m of v.metrics) if (m.metric === 'revenue_per_visit') add(ratioSums, m);
    }
    const capped = [...totals.values()].map((t) => Math.min(t.revenue, 100));
    expect(capped.some((x) => x === 100) && capped.some((x) => x < 100)).toBe(true);
    expect(close(sums.sum, capped.reduce((s, x) => s + x, 0))).toBe(true);
    expect(close(sums.sumSquares, capped.reduce((s, x) => s + x * x, 0))).toBe(true);
    expect([sums.sumY, sums.sumSquaresY, sums.sumXY]).toEqual([0, 0, 0]);
    const raw = [...totals.values()];
    expect(close(ratioSums.sum, raw.reduce((s, t) => s + t.revenue, 0))).toBe(true);
    expect(close(ratioSums.sumSquares, raw.reduce((s, t) => s + t.revenue * t.revenue, 0))).toBe(true);
    expect(close(ratioSums.sumY, raw.reduce((s, t) => s + t.visits, 0))).toBe(true);
    expect(close(ratioSums.sumSquaresY, raw.reduce((s, t) => s + t.visits * t.visits, 0))).toBe(true);
    expect(close(ratioSums.sumXY, raw.reduce((s, t) => s + t.revenue * t.visits, 0))).toBe(true);
  });
  it('a user over the cap moves Σx only as far as the cap, and back below it when the total falls', () => {
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    applyEvent(state, expose('u'), defs, delta);
    applyEvent(state, metric('u', 'revenue', 80), defs, delta);
    applyEvent(state, metric('u', 'revenue', 70), defs, delta); // total 150, capped 100
    applyEvent(state, metric('u', 'revenue', -20), defs, delta); // total 130, still 100
    expect(state.totals['e\u0000revenue']).toBe(130);
    const revenue = delta.deltas()[0]!.variants[0]!.metrics.find((m) => m.metric === 'revenue')!;
    expect(revenue).toEqual({ metric: 'revenue', sum: 100, sumSquares: 10_000, conversions: 0, events: 3, sumY: 0, sumSquaresY: 0, sumXY: 0 });
    applyEvent(state, metric('u', 'revenue', -50), defs, delta); // total 80
    expect(delta.deltas()[0]!.variants[0]!.metrics.find((m) => m.metric === 'revenue')).toMatchObject({ sum: 80, sumSquares: 6_400, events: 4 });
  });

  it('refuses an update whose square would not be finite in the capped sum and the ratio alike, leaving the user totals as they were', () => {
    const state = emptyUserState();
    const delta = new DeltaAccumulator();
    applyEvent(state, expose('u'), defs, delta);
    expect(applyEvent(state, metric('u', 'visits', 1e150), defs, delta)).toEqual(['metric_counted']);
    expect(applyEvent(state, metric('u', 'revenue', 1e155), defs, delta)).toEqual(['value_overflow']);
    expect(state.totals['e\u0000revenue']).toBeUndefined();
    expect(state.totals['e\u0000revenue_per_visit']).toBeUndefined();
    expect(state.totals['e\u0000revenue_per_visit\u0000y']).toBe(1e150);
    expect(delta.deltas()[0]!.variants[0]!.metrics.map((m) => [m.metric, m.events])).toEqual([['revenue_per_visit', 1]]);
  });
});

describe('exp.aggregates records written before ratio metrics (AggregateDelta.v1)', () => {
  it('round-trip the ratio sums (beside the variants, only where one is not 0)', () => {
    const record = { experimentId: 'x', definitionVersion: 2, sourceTopic: 'exp.events', sourcePartition: 1, firstOffset: 10, lastOffset: 20, emittedAt: 3, buckets: [],
      variants: [{ variantId: 'a', exposedUsers: 4, conflicts: 1, metrics: [{ metric: 'revenue', sum: 2.5, sumSquares: 6.25, conversions: 0, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 }, { metric: 'epr', sum: 1, sumSquares: 1, conversions: 0, events: 2, sumY: 3, sumSquaresY: 9, sumXY: -3 }] },
        { variantId: 'b', exposedUsers: 0, conflicts: 0, metrics: [{ metric: 'epr', sum: 0, sumSquares: 0, conversions: 0, events: 1, sumY: 0.5, sumSquaresY: 0.25, sumXY: 0 }] }] };
    expect((aggregates.toAvro!(record) as { ratioSums: unknown[] }).ratioSums).toEqual([{ variantId: 'a', metric: 'epr', sumY: 3, sumSquaresY: 9, sumXY: -3 }, { variantId: 'b', metric: 'epr', sumY: 0.5, sumSquaresY: 0.25, sumXY: 0 }]);
    const decoded = aggregates.decode(aggregates.encode(record, 3));
    expect(decoded.ok && decoded.value).toEqual(record);
  });

  it('decode with Σy, Σy², Σxy 0', () => {
    const v1 = avro.Type.forSchema(JSON.parse(readFileSync(resolve(import.meta.dirname, '../../schemas/history/AggregateDelta.v1.avsc'), 'utf8')) as avro.Schema, { registry: {} });
    const random = seededRandom(5);
    for (let trial = 0; trial < 200; trial++) {
      const variants = Array.from({ length: 1 + randomInt(random, 3) }, (_, v) => ({
        variantId: `v${v}`, exposedUsers: randomInt(random, 1_000), conflicts: randomInt(random, 3),
        metrics: Array.from({ length: randomInt(random, 4) }, (_, m) => ({ metric: `metric-${m}`, sum: random() * 1e4 - 10, sumSquares: random() * 1e6, conversions: randomInt(random, 50), events: randomInt(random, 500) })),
      }));
      const record = { experimentId: `exp-${trial}`, definitionVersion: 1, sourceTopic: 'exp.events', sourcePartition: 0, firstOffset: trial, lastOffset: trial + 9, emittedAt: t(trial), variants, buckets: [{ minute: 60_000, variantId: 'v0', metric: null, count: 2, sum: 0 }] };
      const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 1]), v1.toBuffer(record)]);
      const decoded = aggregates.decode(framed);
      expect(decoded.ok, `trial ${trial}`).toBe(true);
      if (!decoded.ok) return;
      expect(decoded.value).toEqual({ ...record, variants: variants.map((v) => ({ ...v, metrics: v.metrics.map((m) => ({ ...m, sumY: 0, sumSquaresY: 0, sumXY: 0 })) })) });
    }
  });
});

function t(i: number): number {
  return Date.UTC(2026, 0, 1) + i * 1_000;
}
