import { describe, expect, it } from 'vitest';
import { parseDefinition, type PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import { nonFinitePaths } from '../../services/common/numberBounds.ts';
import { differenceConfidenceSequence, oneSidedDifferenceBound } from '../../services/stats/confidenceSequence.ts';
import { evaluateExperiment, type Signal } from '../../services/guard/evaluate.ts';
import { decodeExperimentState, emptyExperimentState, encodeExperimentState, mergeDelta, type ExperimentState } from '../../services/guard/experimentState.ts';

const published: PublishedDefinition = {
  experimentId: 'e',
  version: 3,
  appliedAt: 0,
  definition: parseDefinition({
    id: 'e', name: 'e', hypothesis: 'h', owner: 'o',
    variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
    primaryMetrics: [{ name: 'revenue', type: 'sum' }],
    guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.02 } }],
    minimumSampleSize: 500, plannedSampleSize: 10_000,
  }, 'test'),
};

/** A state with n users per variant whose latency has the given mean and sd. */
function state(counts: [number, number], latency: [number, number] = [100, 100], sd = 20): ExperimentState {
  const s = emptyExperimentState('e');
  mergeDelta(s, {
    experimentId: 'e',
    definitionVersion: 3,
    variants: (['control', 'treatment'] as const).map((v, i) => {
      const n = counts[i]!;
      const m = latency[i]!;
      return { variantId: v, exposedUsers: n, conflicts: 0, metrics: [{ metric: 'latency', sum: n * m, sumSquares: (n - 1) * sd * sd + n * m * m, conversions: 0, events: n, sumY: 0, sumSquaresY: 0, sumXY: 0 }] };
    }),
    buckets: [],
  });
  return s;
}

describe('guard decisions', () => {
  it('stays quiet on a healthy experiment', () => {
    expect(evaluateExperiment(state([5_000, 5_020]), published)).toEqual([]);
  });

  it('halts on a sample ratio mismatch, with the evidence', () => {
    const [signal] = evaluateExperiment(state([5_000, 4_400]), published);
    expect(signal).toMatchObject({ type: 'SAMPLE_RATIO_MISMATCH', halt: true, severity: 'critical', evidence: { definitionVersion: 3, users: { control: 5_000, treatment: 4_400 }, alpha: 0.2 * 0.05, level: { source: 'budget', falseHaltBudget: 0.05 } } });
    expect((signal!.evidence.pValue as number)).toBeLessThan(0.01);
  });

  it('halts on a guardrail regression beyond the tolerance on the harmful side only', () => {
    const [signal] = evaluateExperiment(state([5_000, 5_000], [100, 105]), published);
    expect(signal).toMatchObject({ type: 'GUARDRAIL_REGRESSION', halt: true, metric: 'latency', variantId: 'treatment', evidence: { tolerance: 2, harmfulDirection: 'increase' } });
    expect(signal!.evidence).toMatchObject({ side: 'lower', alpha: 0.8 * 0.05 });
    expect(signal!.evidence.lower as number).toBeGreaterThan(2);
    expect(evaluateExperiment(state([5_000, 5_000], [100, 95]), published)).toEqual([]); // faster is not harm
    expect(evaluateExperiment(state([5_000, 5_000], [100, 101]), published)).toEqual([]); // within tolerance
  });

  it('waits for the minimum sample size before deciding: SRM for all variants together, guardrails for the smallest', () => {
    // 240 + 180 = 420 users in all, under 500: nothing, however lopsided or slow.
    expect(evaluateExperiment(state([240, 180], [100, 150]), published)).toEqual([]);
    // 400 + 400: SRM may decide (and is quiet), the guardrail still waits for 500 in each.
    expect(evaluateExperiment(state([400, 400], [100, 150]), published)).toEqual([]);
    // 500 + 0: an empty variant is a mismatch, not a reason to wait.
    expect(evaluateExperiment(state([500, 0]), published).map((x) => [x.type, x.halt])).toEqual([['SAMPLE_RATIO_MISMATCH', true]]);
  });

  it('raises an incident once', () => {
    const s = state([5_000, 4_400]);
    const [signal] = evaluateExperiment(s, published);
    s.incidents[signal!.incident] = { raisedAt: 1, halted: true, definitionVersion: 3 };
    expect(evaluateExperiment(s, published)).toEqual([]);
  });

  it('raises data-quality warnings without halting, even below the minimum sample size', () => {
    const s = state([100, 100]);
    s.variants.control!.conflicts = 25;
    s.variants.control!.exposuresByMinute = { '60000': 60, '120000': 60, '180000': 5 };
    s.variants.treatment!.exposuresByMinute = { '60000': 60, '120000': 2, '180000': 5 };
    const signals = evaluateExperiment(s, published);
    expect(signals.map((x) => [x.type, x.halt, x.variantId])).toEqual([['USERS_IN_TWO_VARIANTS', false, null], ['VARIANT_RATE_COLLAPSE', false, 'treatment']]);
  });
});

describe('guard numbers stay finite', () => {
  const delta = (variants: { variantId: string; exposedUsers: number; metrics: { metric: string; sum: number; sumSquares: number }[] }[]) => ({
    experimentId: 'e',
    definitionVersion: 3,
    variants: variants.map((v) => ({ variantId: v.variantId, exposedUsers: v.exposedUsers, conflicts: 0, metrics: v.metrics.map((m) => ({ ...m, conversions: 0, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 })) })),
    buckets: [],
  });

  it('skips the part of a delta that is not finite, merges the rest, and keeps the state JSON-safe', () => {
    const s = state([5_000, 5_000]);
    const before = structuredClone(s.variants.treatment!.metrics.latency!);
    const skipped = mergeDelta(s, delta([
      { variantId: 'control', exposedUsers: 3, metrics: [{ metric: 'latency', sum: 300, sumSquares: 30_000 }, { metric: 'revenue', sum: Number.NaN, sumSquares: 1 }] },
      { variantId: 'treatment', exposedUsers: 2, metrics: [{ metric: 'latency', sum: Number.POSITIVE_INFINITY, sumSquares: Number.POSITIVE_INFINITY }] },
    ]));
    expect(skipped).toEqual([
      { variantId: 'control', metric: 'revenue', reason: 'NON_FINITE_DELTA', detail: 'sum=NaN sumSquares=1 conversions=0 events=1 sumY=0 sumSquaresY=0 sumXY=0' },
      { variantId: 'treatment', metric: 'latency', reason: 'NON_FINITE_DELTA', detail: 'sum=Infinity sumSquares=Infinity conversions=0 events=1 sumY=0 sumSquaresY=0 sumXY=0' },
    ]);
    // The finite parts landed: users of both variants, control's latency.
    expect(s.variants.control!.users).toBe(5_003);
    expect(s.variants.treatment!.users).toBe(5_002);
    expect(s.variants.control!.metrics.latency!.sum).toBe(5_000 * 100 + 300);
    // The poisoned metric is untouched, whole: no half-merged Σx without its Σx².
    expect(s.variants.treatment!.metrics.latency).toEqual(before);
    expect(s.variants.control!.metrics.revenue).toBeUndefined();
    expect(nonFinitePaths(s)).toEqual([]);
    expect(decodeExperimentState(encodeExperimentState(s))).toEqual(s);
  });

  it('skips a finite delta that would push a total past the largest double', () => {
    const s = emptyExperimentState('e');
    expect(mergeDelta(s, delta([{ variantId: 'control', exposedUsers: 1, metrics: [{ metric: 'latency', sum: 1e154, sumSquares: 1e308 }] }]))).toEqual([]);
    const skipped = mergeDelta(s, delta([{ variantId: 'control', exposedUsers: 1, metrics: [{ metric: 'latency', sum: 1e154, sumSquares: 1e308 }] }]));
    expect(skipped.map((p) => [p.metric, p.reason])).toEqual([['latency', 'TOTAL_WOULD_OVERFLOW']]);
    expect(s.variants.control).toMatchObject({ users: 2, metrics: { latency: { sum: 1e154, sumSquares: 1e308, events: 1 } } });
  });

  it('still decides after a skipped delta, and never puts a non-finite number in evidence', () => {
    const s = state([5_000, 4_400]);
    mergeDelta(s, delta([{ variantId: 'treatment', exposedUsers: 0, metrics: [{ metric: 'latency', sum: Number.NaN, sumSquares: Number.NaN }] }]));
    const signals = evaluateExperiment(s, published);
    expect(signals.map((x) => x.type)).toEqual(['SAMPLE_RATIO_MISMATCH']);
    expect(nonFinitePaths(signals)).toEqual([]);
  });

  it('takes no guardrail decision from totals at the edge of doubles', () => {
    // Finite totals (as mergeDelta guarantees) whose variance is so large that the two-sided
    // sequence's half-width squares past the largest double (its bounds are ±∞, which decide
    // nothing), and the one-sided bound the guard uses is finite and far from the tolerance.
    const s = state([5_000, 5_000]);
    s.variants.control!.metrics.latency = { sum: 0, sumSquares: 1.7e308, conversions: 0, events: 5_000, sumY: 0, sumSquaresY: 0, sumXY: 0 };
    s.variants.treatment!.metrics.latency = { sum: 5_000 * 1e150, sumSquares: 1.7e308, conversions: 0, events: 5_000, sumY: 0, sumSquaresY: 0, sumXY: 0 };
    const cs = differenceConfidenceSequence({ users: 5_000, sum: 0, sumSquares: 1.7e308 }, { users: 5_000, sum: 5_000 * 1e150, sumSquares: 1.7e308 }, 0.05);
    expect(cs.ok && [cs.lower, cs.upper]).toEqual([Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY]);
    const bound = oneSidedDifferenceBound({ users: 5_000, sum: 0, sumSquares: 1.7e308 }, { users: 5_000, sum: 5_000 * 1e150, sumSquares: 1.7e308 }, { alpha: 0.04, side: 'lower', plannedUsersPerVariant: 10_000 });
    expect(bound.ok && Number.isFinite(bound.bound) && bound.bound < 0).toBe(true);
    const withheld: string[][] = [];
    expect(evaluateExperiment(s, published, (_signal, paths) => withheld.push(paths))).toEqual([]);
    expect(withheld).toEqual([]);
  });

  it('withholds a signal whose evidence would hold a non-finite number, and says which', () => {
    // Conflicts with no exposed users (inconsistent totals): the share would be 25 / 0 = ∞.
    const s = emptyExperimentState('e');
    s.variants.control = { users: 0, conflicts: 25, metrics: {}, exposuresByMinute: {} };
    const withheld: [Signal['type'], string[]][] = [];
    expect(evaluateExperiment(s, published, (signal, paths) => withheld.push([signal.type, paths]))).toEqual([]);
    expect(withheld).toEqual([['USERS_IN_TWO_VARIANTS', ['evidence.share']]]);
  });
});
