import { describe, expect, it } from 'vitest';
import { parseDefinition, type PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import { checkInput, type CheckInput } from '../../services/guard/checks/guardCheck.ts';
import { guardrailRegression } from '../../services/guard/checks/guardrailRegression.ts';
import { guardChecks } from '../../services/guard/checks/index.ts';
import { noTraffic } from '../../services/guard/checks/noTraffic.ts';
import { sampleRatioMismatch } from '../../services/guard/checks/sampleRatioMismatch.ts';
import { usersInTwoVariants } from '../../services/guard/checks/usersInTwoVariants.ts';
import { variantRateCollapse } from '../../services/guard/checks/variantRateCollapse.ts';
import { emptyExperimentState, type ExperimentState } from '../../services/guard/experimentState.ts';

// Each check on its own, against values computed here by hand or by a few lines of
// arithmetic written out in the test (never by services/stats).

function published(variants: { id: string; weight: number }[], guardrail: Record<string, unknown> = {}): PublishedDefinition {
  return {
    experimentId: 'e',
    version: 7,
    appliedAt: 0,
    definition: parseDefinition({
      id: 'e', name: 'e', hypothesis: 'h', owner: 'o', variants,
      primaryMetrics: [{ name: 'revenue', type: 'sum' }],
      guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.02 }, ...guardrail }],
      minimumSampleSize: 100, plannedSampleSize: 10_000,
    }, 'test'),
  };
}

const twoArms = [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }];

/** Variants with n users whose latency has mean m and sample sd s: Σx = n·m, Σx² = (n − 1)s² + n·m². */
function state(variants: Record<string, { users: number; latency?: [number, number]; conflicts?: number; minutes?: Record<string, number> }>): ExperimentState {
  const s = emptyExperimentState('e');
  for (const [id, v] of Object.entries(variants)) {
    const [m, sd] = v.latency ?? [0, 0];
    s.variants[id] = {
      users: v.users,
      conflicts: v.conflicts ?? 0,
      metrics: v.latency ? { latency: { sum: v.users * m, sumSquares: (v.users - 1) * sd * sd + v.users * m * m, conversions: 0, events: v.users, sumY: 0, sumSquaresY: 0, sumXY: 0 } } : {},
      exposuresByMinute: v.minutes ?? {},
    };
  }
  return s;
}

const input = (s: ExperimentState, p: PublishedDefinition): CheckInput => checkInput(s, p);

describe('the registered checks', () => {
  it('run in this order, statistical ones gated on the minimum sample size (SRM on all variants together), each with its action setting', () => {
    expect(guardChecks.map((c) => [c.type, c.waitsForMinimumSample, c.minimumSampleOf ?? 'everyVariant', c.setting])).toEqual([
      ['SAMPLE_RATIO_MISMATCH', true, 'total', 'srm'],
      ['GUARDRAIL_REGRESSION', true, 'everyVariant', 'guardrails'],
      ['USERS_IN_TWO_VARIANTS', false, 'everyVariant', 'usersInTwoVariants'],
      ['VARIANT_RATE_COLLAPSE', false, 'everyVariant', 'rateCollapse'],
      ['NO_TRAFFIC', false, 'everyVariant', 'noTraffic'],
    ]);
  });

  it('share the evidence base: definition version and users per variant, in definition order', () => {
    const p = published(twoArms);
    expect(checkInput(state({ treatment: { users: 5 } }), p).base).toEqual({ definitionVersion: 7, users: { control: 0, treatment: 5 } });
  });
});

describe('sample ratio mismatch', () => {
  const threeArms = [{ id: 'control', weight: 0.25 }, { id: 'a', weight: 0.25 }, { id: 'b', weight: 0.5 }];

  /**
   * log BF of the Dirichlet-multinomial test with prior α_i = 100·w_i, written without a
   * gamma function: Γ(a + n)/Γ(a) = a(a+1)…(a+n−1), so
   * log BF = Σ_i Σ_{k<n_i} log(α_i + k) − Σ_{k<N} log(A + k) − Σ_i n_i log w_i.
   */
  function logBayesFactor(counts: number[], weights: number[]): number {
    const rising = (a: number, n: number) => {
      let s = 0;
      for (let k = 0; k < n; k++) s += Math.log(a + k);
      return s;
    };
    const total = counts.reduce((a, b) => a + b, 0);
    return counts.reduce((s, n, i) => s + rising(100 * weights[i]!, n) - n * Math.log(weights[i]!), 0) - rising(100, total);
  }

  it('raises a halting signal when the Bayes factor reaches 1 / threshold, with chi-square beside it', () => {
    const counts = [650, 500, 1_000];
    const expectedLogBf = logBayesFactor(counts, [0.25, 0.25, 0.5]);
    expect(expectedLogBf).toBeGreaterThan(Math.log(100)); // a mismatch at SRM's share of the default budget, 0.2 × 0.05 = 0.01
    // X² by hand: N = 2150, E = 537.5, 537.5, 1075: 112.5²/537.5 + 37.5²/537.5 + 75²/1075 = 31.395…; with 2 degrees of freedom p = e^(−X²/2).
    const chi = (112.5 * 112.5) / 537.5 + (37.5 * 37.5) / 537.5 + (75 * 75) / 1_075;
    const p = published(threeArms);
    const [signal, ...rest] = sampleRatioMismatch.signals(input(state({ control: { users: 650 }, a: { users: 500 }, b: { users: 1_000 } }), p));
    expect(rest).toEqual([]);
    expect(signal).toMatchObject({ incident: 'SRM', type: 'SAMPLE_RATIO_MISMATCH', severity: 'critical', halt: true, variantId: null, metric: null });
    expect(signal!.reason).toMatch(/^sample ratio mismatch: users 650 \/ 500 \/ 1000 against planned weights 0\.25 \/ 0\.25 \/ 0\.5 \(Bayes factor .* ≥ 100\.0, alpha 0\.0100\)$/);
    const evidence = signal!.evidence as { logBayesFactor: number; pValue: number; chiSquare: { statistic: number; pValue: number } };
    expect(evidence).toMatchObject({ definitionVersion: 7, users: { control: 650, a: 500, b: 1_000 }, weights: [0.25, 0.25, 0.5], level: { source: 'budget', spends: true, falseHaltBudget: 0.05 }, test: 'dirichlet-multinomial sequential (Lindon & Malek 2022)' });
    expect((evidence as unknown as { alpha: number }).alpha).toBeCloseTo(0.01, 15);
    expect(evidence.logBayesFactor).toBeCloseTo(expectedLogBf, 8);
    expect(evidence.pValue).toBeCloseTo(Math.exp(-expectedLogBf), 12);
    expect(evidence.chiSquare.statistic).toBeCloseTo(chi, 12);
    expect(evidence.chiSquare.pValue).toBeCloseTo(Math.exp(-chi / 2), 12);
  });

  it('stays quiet below the threshold', () => {
    const counts = [540, 530, 1_050];
    expect(logBayesFactor(counts, [0.25, 0.25, 0.5])).toBeLessThan(Math.log(100));
    expect(sampleRatioMismatch.signals(input(state({ control: { users: 540 }, a: { users: 530 }, b: { users: 1_050 } }), published(threeArms)))).toEqual([]);
  });
});

describe('guardrail regression', () => {
  // Control n = 1000, mean 100, sd 20; treatment n = 1000, sd 20; planned 10,000 per variant.
  // Two arms and one guardrail: the test gets the guardrail share of the default budget,
  // 0.8 × 0.05 = 0.04 (services/common/guardPolicy.ts). The one-sided margin v·u(1/v), with u
  // the one-sided normal mixture boundary and ρ tuned to the plan, is computed by SciPy in
  // test/unit/reference/guard_statistics.py (brentq to 1e-15; asserted to 1e-9 here).
  const margin = 3.3168751795418334;
  const arms = (treatmentMean: number) => state({ control: { users: 1_000, latency: [100, 20] }, treatment: { users: 1_000, latency: [treatmentMean, 20] } });

  it('halts when the one-sided bound lies beyond the tolerance on the harmful side, naming its share of the budget', () => {
    const [signal, ...rest] = guardrailRegression.signals(input(arms(106), published(twoArms)));
    expect(rest).toEqual([]);
    expect(signal).toMatchObject({ incident: 'GUARDRAIL:latency:treatment', type: 'GUARDRAIL_REGRESSION', severity: 'critical', halt: true, variantId: 'treatment', metric: 'latency' });
    const e = signal!.evidence as Record<string, number>;
    expect(e).toMatchObject({ definitionVersion: 7, control: 'control', harmfulDirection: 'increase', side: 'lower', users: { control: 1_000, treatment: 1_000 }, level: { source: 'budget', spends: true, falseHaltBudget: 0.05, tests: 1 }, plannedSampleSize: 10_000 });
    expect(e.alpha).toBeCloseTo(0.04, 15);
    expect(e.controlMean).toBeCloseTo(100, 12);
    expect(e.treatmentMean).toBeCloseTo(106, 12);
    expect(e.difference).toBeCloseTo(6, 10);
    expect(e.tolerance).toBeCloseTo(2, 12); // 2 % of the control mean
    expect(e.lower).toBeCloseTo(6 - margin, 9);
    expect(e.bound).toBe(e.lower);
    expect(e.upper).toBeUndefined(); // one-sided: nothing is claimed on the harmless side
    expect(signal!.reason).toBe(`guardrail latency regressed in treatment: difference 6.000 with always-valid lower bound ${(6 - margin).toPrecision(4)} beyond the tolerance 2.000 (increase is harmful; one-sided at alpha 0.0400)`);
  });

  it('decides nothing within the tolerance, on the harmless side, or with zero variance', () => {
    expect(5 - margin).toBeLessThan(2); // lower bound 1.68 does not exclude the tolerance
    expect(guardrailRegression.signals(input(arms(105), published(twoArms)))).toEqual([]);
    expect(guardrailRegression.signals(input(arms(90), published(twoArms)))).toEqual([]);
    const flat = state({ control: { users: 1_000, latency: [100, 0] }, treatment: { users: 1_000, latency: [200, 0] } });
    expect(guardrailRegression.signals(input(flat, published(twoArms)))).toEqual([]);
  });

  it('with decrease harmful and an absolute tolerance, per treatment in definition order, the budget split over treatments', () => {
    // Two treatments × one guardrail: 0.04 / 2 = 0.02 each; margin by SciPy as above.
    const margin2 = 3.51179849111041;
    const p = published([{ id: 'control', weight: 0.34 }, { id: 'a', weight: 0.33 }, { id: 'b', weight: 0.33 }], { harmfulDirection: 'decrease', tolerance: { kind: 'absolute', value: 1 } });
    const s = state({ control: { users: 1_000, latency: [100, 20] }, a: { users: 1_000, latency: [95, 20] }, b: { users: 1_000, latency: [94, 20] } });
    // a: upper = −5 + 3.51 = −1.49 < −1, harmed; b: upper = −6 + 3.51 = −2.49 < −1, harmed.
    const signals = guardrailRegression.signals(input(s, p));
    expect(signals.map((x) => [x.incident, (x.evidence as { tolerance: number }).tolerance])).toEqual([['GUARDRAIL:latency:a', 1], ['GUARDRAIL:latency:b', 1]]);
    expect(signals[0]!.evidence).toMatchObject({ side: 'upper', level: { tests: 2 } });
    expect((signals[0]!.evidence as { alpha: number }).alpha).toBeCloseTo(0.02, 15);
    expect((signals[0]!.evidence as { upper: number }).upper).toBeCloseTo(-5 + margin2, 9);
    // A 4-unit drop: upper = −0.49, not beyond −1.
    const mild = state({ control: { users: 1_000, latency: [100, 20] }, a: { users: 1_000, latency: [96, 20] }, b: { users: 1_000, latency: [100, 20] } });
    expect(guardrailRegression.signals(input(mild, p))).toEqual([]);
  });
});

describe('users in two variants', () => {
  const run = (users: [number, number], conflicts: [number, number]) =>
    usersInTwoVariants.signals(input(state({ control: { users: users[0], conflicts: conflicts[0] }, treatment: { users: users[1], conflicts: conflicts[1] } }), published(twoArms)));

  it('warns when at least 20 users, and over 1 % of all, were in two variants', () => {
    // 1,900 users: 1 % is 19, so 20 conflicts are over it.
    expect(run([1_000, 900], [12, 8])).toEqual([{
      incident: 'CONFLICTS', type: 'USERS_IN_TWO_VARIANTS', severity: 'warning', halt: false, variantId: null, metric: null,
      reason: '20 of 1900 users were exposed to more than one variant',
      evidence: { definitionVersion: 7, users: { control: 1_000, treatment: 900 }, conflicts: 20, share: 20 / 1_900, threshold: 0.01 },
    }]);
  });

  it('stays quiet under 20 conflicts or at 1 % exactly', () => {
    expect(run([500, 500], [10, 9])).toEqual([]); // 19 conflicts, 1.9 %
    expect(run([1_250, 1_250], [13, 12])).toEqual([]); // 25 of 2,500 is 1 %, not over it
    expect(run([1_250, 1_250], [13, 13])).toHaveLength(1);
  });
});

describe('variant rate collapse', () => {
  const run = (variants: { id: string; weight: number }[], minutes: Record<string, Record<string, number>>) =>
    variantRateCollapse.signals(input(state(Object.fromEntries(variants.map((v) => [v.id, { users: 10, minutes: minutes[v.id] ?? {} }]))), published(variants)));

  it('warns for a variant under a tenth of its planned share in the last complete minute', () => {
    // Minutes 1, 2, 3 (ms 60,000 …): minute 3 is still filling, minute 2 is the last complete one.
    // There: 60 + 2 = 62 exposures, treatment expected 0.5 · 62 = 31, and 2 < 3.1.
    expect(run(twoArms, { control: { '60000': 60, '120000': 60, '180000': 5 }, treatment: { '60000': 60, '120000': 2, '180000': 5 } })).toEqual([{
      incident: 'RATE_COLLAPSE:treatment:120000', type: 'VARIANT_RATE_COLLAPSE', severity: 'warning', halt: false, variantId: 'treatment', metric: null,
      reason: 'variant treatment had 2 exposures in the minute from 1970-01-01T00:02:00.000Z, expected about 31',
      evidence: { definitionVersion: 7, users: { control: 10, treatment: 10 }, minute: 120_000, exposures: 2, expected: 31, minuteTotal: 62 },
    }]);
  });

  it('counts a variant with no bucket that minute as zero, and weighs by plan', () => {
    // 20/80 split, minute 2 total 90: control expected 18 (0 < 1.8, collapsed), treatment expected 72.
    const signals = run([{ id: 'control', weight: 0.2 }, { id: 'treatment', weight: 0.8 }], { control: { '60000': 10, '180000': 1 }, treatment: { '60000': 40, '120000': 90 } });
    expect(signals.map((s) => [s.incident, s.evidence.expected, s.evidence.exposures])).toEqual([['RATE_COLLAPSE:control:120000', 0.2 * 90, 0]]);
  });

  it('stays quiet under 50 exposures that minute, with one minute only, or at a tenth of the share', () => {
    expect(run(twoArms, { control: { '60000': 48, '120000': 1 }, treatment: { '60000': 1, '120000': 1 } })).toEqual([]); // 49 in minute 1
    expect(run(twoArms, { control: { '60000': 100 }, treatment: { '60000': 0 } })).toEqual([]);
    // Minute 1: 95 + 5 = 100, treatment expected 50, a tenth is 5: not under it.
    expect(run(twoArms, { control: { '60000': 95, '120000': 1 }, treatment: { '60000': 5 } })).toEqual([]);
  });
});

describe('no traffic', () => {
  // Exposure minutes 1 and 2 (ms 60,000 and 120,000): the last exposure minute ends at 180,000.
  const quiet = state({ control: { users: 10, minutes: { '60000': 5, '120000': 3 } }, treatment: { users: 10, minutes: { '60000': 4 } } });
  const at = (now: number, changes: Record<string, unknown> = {}) => {
    const p = published(twoArms);
    return noTraffic.signals(checkInput(quiet, { ...p, definition: { ...p.definition, ...changes } }, now));
  };

  it('warns once the newest exposure minute ended noTrafficMinutes (default 60) ago', () => {
    expect(at(180_000 + 59 * 60_000)).toEqual([]);
    expect(at(180_000 + 60 * 60_000)).toEqual([{
      incident: 'NO_TRAFFIC:120000', type: 'NO_TRAFFIC', severity: 'warning', halt: false, variantId: null, metric: null,
      reason: 'no exposures for 60 minutes (since 1970-01-01T00:03:00.000Z; the limit is 60)',
      evidence: { definitionVersion: 7, users: { control: 10, treatment: 10 }, lastExposureMinute: 120_000, quietMinutes: 60, noTrafficMinutes: 60, now: 180_000 + 60 * 60_000 },
    }]);
    expect(at(180_000 + 5 * 60_000, { noTrafficMinutes: 5 })).toHaveLength(1);
  });

  it('takes a fraction of a minute (the guard judges it at each punctuation, GUARD_PUNCTUATE_MS)', () => {
    expect(at(180_000 + 2_999, { noTrafficMinutes: 0.05 })).toEqual([]);
    expect(at(180_000 + 3_000, { noTrafficMinutes: 0.05 })).toMatchObject([{ incident: 'NO_TRAFFIC:120000', evidence: { quietMinutes: 0.05, noTrafficMinutes: 0.05 } }]);
  });

  it('stays quiet without a clock or without any exposure yet', () => {
    expect(noTraffic.signals(checkInput(quiet, published(twoArms)))).toEqual([]);
    expect(noTraffic.signals(checkInput(state({ control: { users: 0 } }), published(twoArms), 10 * 3_600_000))).toEqual([]);
  });
});
