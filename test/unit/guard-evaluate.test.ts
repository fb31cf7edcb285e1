import { describe, expect, it } from 'vitest';
import { parseDefinition, type PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import { evaluateExperiment } from '../../services/guard/evaluate.ts';
import { emptyExperimentState, mergeDelta, type ExperimentState } from '../../services/guard/experimentState.ts';

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
      return { variantId: v, exposedUsers: n, conflicts: 0, metrics: [{ metric: 'latency', sum: n * m, sumSquares: (n - 1) * sd * sd + n * m * m, conversions: 0, events: n }] };
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
    expect(signal).toMatchObject({ type: 'SAMPLE_RATIO_MISMATCH', halt: true, severity: 'critical', evidence: { definitionVersion: 3, users: { control: 5_000, treatment: 4_400 }, threshold: 0.001 } });
    expect((signal!.evidence.pValue as number)).toBeLessThan(0.001);
  });

  it('halts on a guardrail regression beyond the tolerance on the harmful side only', () => {
    const [signal] = evaluateExperiment(state([5_000, 5_000], [100, 105]), published);
    expect(signal).toMatchObject({ type: 'GUARDRAIL_REGRESSION', halt: true, metric: 'latency', variantId: 'treatment', evidence: { tolerance: 2, harmfulDirection: 'increase' } });
    expect(signal!.evidence.lower as number).toBeGreaterThan(2);
    expect(evaluateExperiment(state([5_000, 5_000], [100, 95]), published)).toEqual([]); // faster is not harm
    expect(evaluateExperiment(state([5_000, 5_000], [100, 101]), published)).toEqual([]); // within tolerance
  });

  it('waits for the minimum sample size before deciding', () => {
    expect(evaluateExperiment(state([400, 300], [100, 150]), published)).toEqual([]);
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
