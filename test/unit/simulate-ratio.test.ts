import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { ratioOfMeans } from '../../services/stats/ratioOfMeans.ts';
import { DEFAULT_BASELINES, meanShift, parseBaseline, parseEffect, ratioDraw, type RatioValue } from '../../services/cli/simulate/metricModels.ts';
import { parseSimulateFlags, type SimulateFlags } from '../../services/cli/simulate/simulateFlags.ts';
import { simulateRuns } from '../../services/cli/simulate/simulateRuns.ts';
import { summarize } from '../../services/cli/simulate/simulationSummary.ts';
import { seededRandom } from '../support/random.ts';
import { usageError } from '../support/usageError.ts';

/**
 * `expctl simulate` with a ratio guardrail: the per-user model (Poisson units, one value per
 * unit) has the moments it documents, checked by the delta method's own sums over 200,000
 * users; the run loop feeds Σy, Σy², Σxy to the guard, which then halts a harmful ratio change
 * and leaves an A/A one alone.
 */
const definition = parseDefinition({
  id: 'sim-ratio', name: 'sim', hypothesis: 'h', owner: 'o',
  variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
  primaryMetrics: [{ name: 'purchase', type: 'conversion' }],
  guardrailMetrics: [{ name: 'errors_per_request', type: 'ratio', numerator: 'errors', denominator: 'requests', harmfulDirection: 'increase', tolerance: { kind: 'absolute', value: 0 } }],
  minimumSampleSize: 100, plannedSampleSize: 4_000,
}, 'test');
const metrics = [{ name: 'purchase', type: 'conversion' as const }, { name: 'errors_per_request', type: 'ratio' as const, numerator: 'errors', denominator: 'requests' }];

const run = (flags: SimulateFlags) => summarize(simulateRuns(parseSimulateFlags(definition, { runs: '40', users: '4000', lookEvery: '200', ...flags })));

describe('expctl simulate: ratio metrics', () => {
  it('--baseline of a ratio metric: mean, sd, dist and per (units per user), bounded; the default is lognormal 1 ± 1 per unit, 5 units', () => {
    expect(parseSimulateFlags(definition, {}).baselines.errors_per_request).toEqual(DEFAULT_BASELINES.ratio);
    expect(parseBaseline('errors_per_request=mean=0.02,sd=0.1,per=20,dist=normal', metrics)).toEqual({ metric: 'errors_per_request', baseline: { type: 'ratio', dist: 'normal', mean: 0.02, sd: 0.1, per: 20 } });
    expect(usageError(() => parseBaseline('errors_per_request=per=0', metrics))).toBe('--baseline errors_per_request per (denominator units per user) must be above 0 and at most 100, got 0');
    expect(usageError(() => parseBaseline('errors_per_request=per=101', metrics))).toBe('--baseline errors_per_request per (denominator units per user) must be above 0 and at most 100, got 101');
    expect(usageError(() => parseBaseline('errors_per_request=rate=0.1', metrics))).toBe("--baseline errors_per_request is a ratio metric: its keys are mean, sd, dist, per (got 'rate')");
    expect(usageError(() => parseBaseline('purchase=per=3', metrics))).toBe("--baseline purchase is a conversion metric: its keys are rate (got 'per')");
  });

  it('the work bound counts a ratio metric\'s units: runs × users × (1 + 1 + (1 + 2 × per))', () => {
    // 1 run × 1,000,000 users × (1 + 1 + 201) = 203 million: allowed; 3 runs are not.
    expect(parseSimulateFlags(definition, { runs: '1', users: '1000000', lookEvery: '1000', baseline: ['errors_per_request=per=100'] }).runs).toBe(1);
    expect(usageError(() => parseSimulateFlags(definition, { runs: '3', users: '1000000', lookEvery: '1000', baseline: ['errors_per_request=per=100'] })))
      .toBe('--runs × --users × (203 values per user: the variant, each metric, a ratio metric\'s units) is at most 500,000,000 simulated values (got 609,000,000); lower --runs or --users');
  });

  it('a user\'s draw: Σx/Σy is the per-unit mean plus the shift, and the delta-method per-user sd is sd/√per (200,000 users)', () => {
    const baseline = { type: 'ratio' as const, dist: 'normal' as const, mean: 2, sd: 1.5, per: 4 };
    for (const shift of [0, 0.25]) {
      const draw = ratioDraw('errors_per_request', baseline, shift);
      const random = seededRandom(11);
      const sums = { users: 200_000, sumX: 0, sumSquaresX: 0, sumY: 0, sumSquaresY: 0, sumXY: 0 };
      const out: RatioValue = { x: 0, y: 0 };
      for (let i = 0; i < sums.users; i++) {
        draw(random, out);
        sums.sumX += out.x;
        sums.sumSquaresX += out.x * out.x;
        sums.sumY += out.y;
        sums.sumSquaresY += out.y * out.y;
        sums.sumXY += out.x * out.y;
      }
      const estimate = ratioOfMeans(sums);
      // Standard error of R̂: (1.5 / 2) / √200,000 ≈ 0.0017; 4 standard errors of slack.
      expect(Math.abs(estimate.ratio - (2 + shift))).toBeLessThan(0.007);
      expect(Math.abs(estimate.denominatorMean - 4)).toBeLessThan(0.02);
      expect(Math.abs(Math.sqrt(estimate.variance) / (1.5 / 2) - 1)).toBeLessThan(0.02);
    }
    expect(meanShift(baseline, parseEffect('errors_per_request=0.1sd', metrics))).toBeCloseTo(0.1 * 0.75, 12);
    expect(meanShift(baseline, parseEffect('errors_per_request=10%', metrics))).toBeCloseTo(0.2, 12);
  });

  it('A/A at zero tolerance: few runs halt; a harmful 0.3 sd change of the ratio halts nearly every run; the same change the harmless way, few', () => {
    const aa = run({});
    expect(aa.halted).toBeLessThanOrEqual(6);
    const harmful = run({ effect: ['errors_per_request=0.3sd'] });
    expect(harmful.halted).toBeGreaterThanOrEqual(36);
    expect(harmful.byCheck.GUARDRAIL_REGRESSION?.halts).toBeGreaterThanOrEqual(harmful.halted - 2);
    const harmless = run({ effect: ['errors_per_request=-0.3sd'] });
    expect(harmless.halted).toBeLessThanOrEqual(6);
  });
});
