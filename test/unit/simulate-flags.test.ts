import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { DEFAULT_BASELINES, meanShift, parseBaseline, parseEffect, valueDraw } from '../../services/cli/simulate/metricModels.ts';
import { parseSimulateFlags, parseWeights, SIMULATE_LIMITS, type SimulateFlags } from '../../services/cli/simulate/simulateFlags.ts';
import { seededRandom } from '../support/random.ts';
import { usageError } from '../support/usageError.ts';

const definition = parseDefinition({
  id: 'sim', name: 'sim', hypothesis: 'h', owner: 'o',
  variants: [{ id: 'control', weight: 0.5 }, { id: 'b', weight: 0.3 }, { id: 'c', weight: 0.2 }],
  primaryMetrics: [{ name: 'purchase', type: 'conversion' }],
  guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.05 } }],
  minimumSampleSize: 100, plannedSampleSize: 5_000,
}, 'test');
const metrics = [{ name: 'purchase', type: 'conversion' as const }, { name: 'latency', type: 'sum' as const }];

const plan = (flags: SimulateFlags) => parseSimulateFlags(definition, flags);

describe('expctl simulate flags', () => {
  it('defaults: the planned weights, A/A, default baselines by metric type, 200 runs of 10,000 users looked at every 100', () => {
    const p = plan({});
    expect(p).toMatchObject({ runs: 200, users: 10_000, lookEvery: 100, seed: 1, usersPerMinute: 1_000, weights: [0.5, 0.3, 0.2], effects: [] });
    expect(p.baselines).toEqual({ purchase: DEFAULT_BASELINES.conversion, latency: DEFAULT_BASELINES.sum });
    expect(p.published).toMatchObject({ experimentId: 'sim', version: 1, definition });
  });

  it('counts are integers within their caps, named in the error', () => {
    expect(plan({ runs: '5', users: '300', lookEvery: '300', seed: '4294967295' })).toMatchObject({ runs: 5, users: 300, lookEvery: 300, seed: 4_294_967_295 });
    expect(usageError(() => plan({ runs: '0' }))).toBe("--runs must be an integer from 1 to 10,000, got '0'");
    expect(usageError(() => plan({ runs: '10001' }))).toMatch(/^--runs must be an integer from 1 to 10,000/);
    expect(usageError(() => plan({ runs: '2.5' }))).toMatch(/^--runs /);
    expect(usageError(() => plan({ runs: 'NaN' }))).toMatch(/^--runs /);
    expect(usageError(() => plan({ runs: ' ' }))).toMatch(/^--runs /);
    expect(usageError(() => plan({ users: '1e7' }))).toMatch(/^--users must be an integer from 1 to 1,000,000/);
    expect(usageError(() => plan({ users: 'Infinity' }))).toMatch(/^--users /);
    expect(usageError(() => plan({ lookEvery: '-1' }))).toMatch(/^--look-every /);
    expect(usageError(() => plan({ seed: '-1' }))).toMatch(/^--seed /);
    expect(usageError(() => plan({ usersPerMinute: '0' }))).toMatch(/^--users-per-minute /);
    expect(usageError(() => plan({ runs: '9'.repeat(5_000) }))).toMatch(/^--runs must be .* got '9{40}…'$/);
  });

  it('bounds the work: looks per run, decisions and values drawn over all runs, look-every within users', () => {
    expect(usageError(() => plan({ users: '100', lookEvery: '101' }))).toBe('--look-every must not exceed --users (100), got 101');
    expect(usageError(() => plan({ users: '1000000', lookEvery: '10' }))).toMatch(/^--look-every gives 100000 looks per run .* at most 10000/);
    expect(usageError(() => plan({ runs: '10000', users: '10000', lookEvery: '100' }))).toBe('--runs × looks per run is at most 250,000 guard decisions (got 10000 × 100); lower --runs or raise --look-every');
    expect(usageError(() => plan({ runs: '1000', users: '1000000', lookEvery: '10000' }))).toBe('--runs × --users × (2 metrics + 1) is at most 500,000,000 simulated values (got 3,000,000,000); lower --runs or --users');
    const largest = plan({ runs: '150', users: '1000000', lookEvery: '1000' });
    expect(largest.runs * largest.users * 3).toBeLessThanOrEqual(SIMULATE_LIMITS.draws);
  });

  it('--weights: one per variant in definition order, from 0 to 1, summing to 1 (100/0 allowed), scaled to exactly 1', () => {
    expect(parseWeights('0.97,0.02,0.01', definition)).toEqual([0.97, 0.02, 0.01].map((w) => w / (0.97 + 0.02 + 0.01)));
    expect(parseWeights('1,0,0', definition)).toEqual([1, 0, 0]);
    const third = parseWeights('0.333,0.333,0.333', definition);
    expect(third.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 15);
    expect(usageError(() => parseWeights('0.5,0.5', definition))).toBe('--weights needs one weight per variant, in order (control, b, c): 3, got 2');
    expect(usageError(() => parseWeights('0.5,0.6,-0.1', definition))).toBe('--weights c: a weight is from 0 to 1, got -0.1');
    expect(usageError(() => parseWeights('0.5,0.5,x', definition))).toBe("--weights c: 'x' is not a finite number");
    expect(usageError(() => parseWeights('0.5,,0.5', definition))).toBe("--weights b: '' is not a finite number");
    expect(usageError(() => parseWeights('0.5,0.5,Infinity', definition))).toMatch(/^--weights c: /);
    expect(usageError(() => parseWeights('0.5,0.3,0.1', definition))).toBe('--weights must sum to 1, they sum to 0.9');
    expect(usageError(() => parseWeights(','.repeat(2_000), definition))).toBe('--weights is at most 1000 characters (got 2000)');
    expect(plan({ weights: '0.9,0.05,0.05' }).weights[0]).toBeCloseTo(0.9, 12);
  });

  it('--effect: absolute, relative or in standard deviations, on a metric of the definition, once per metric', () => {
    expect(parseEffect('latency=+5', metrics)).toEqual({ metric: 'latency', change: 5, unit: 'absolute', text: '+5' });
    expect(parseEffect('latency=-2.5', metrics)).toMatchObject({ change: -2.5, unit: 'absolute' });
    expect(parseEffect('latency=10%', metrics)).toMatchObject({ change: 0.1, unit: 'relative' });
    expect(parseEffect('latency=-0.5%', metrics)).toMatchObject({ change: -0.005, unit: 'relative' });
    expect(parseEffect('purchase=0.1sd', metrics)).toMatchObject({ metric: 'purchase', change: 0.1, unit: 'sd' });
    expect(parseEffect('latency=1e-3SD', metrics)).toMatchObject({ change: 0.001, unit: 'sd' });
    expect(parseEffect('latency=.5', metrics)).toMatchObject({ change: 0.5, unit: 'absolute' });
    expect(usageError(() => parseEffect('latency', metrics))).toBe("--effect must be <metric>=<value>, got 'latency'");
    expect(usageError(() => parseEffect('=5', metrics))).toBe("--effect must be <metric>=<value>, got '=5'");
    expect(usageError(() => parseEffect('revenue=5', metrics))).toBe("--effect 'revenue' is not a metric of the definition (purchase, latency)");
    for (const bad of ['latency=', 'latency=5x', 'latency=NaN', 'latency=Infinity', 'latency=5%%', 'latency=0x10', 'latency=+-5', 'latency=5 sd']) {
      expect(usageError(() => parseEffect(bad, metrics)), bad).toMatch(/^--effect latency: '.*' is not a change: write \+5 \(absolute\), 10% \(relative\) or 0\.1sd/);
    }
    expect(usageError(() => parseEffect('latency=1e400', metrics))).toBe("--effect latency must be a finite number, got '1e400'");
    expect(usageError(() => parseEffect('latency=2e9', metrics))).toBe('--effect latency: at most 1000000000 in size, got 2e9');
    expect(usageError(() => parseEffect(`latency=${'1'.repeat(300)}`, metrics))).toBe('--effect is at most 200 characters (got 308)');
    expect(usageError(() => plan({ effect: ['latency=1', 'latency=2'] }))).toBe('--effect latency is given twice');
    expect(usageError(() => plan({ effect: ['latency=1', 'purchase=0.01', 'latency=2'] }))).toBe('--effect is given at most once per metric (2), got 3');
  });

  it('--baseline: rate for a conversion metric; mean, sd and dist for a sum metric, the rest kept at the defaults', () => {
    expect(parseBaseline('purchase=rate=0.2', metrics)).toEqual({ metric: 'purchase', baseline: { type: 'conversion', rate: 0.2 } });
    expect(parseBaseline('latency=mean=250,sd=80', metrics)).toEqual({ metric: 'latency', baseline: { type: 'sum', dist: 'lognormal', mean: 250, sd: 80 } });
    expect(parseBaseline('latency=dist=normal,mean=-3', metrics)).toEqual({ metric: 'latency', baseline: { type: 'sum', dist: 'normal', mean: -3, sd: DEFAULT_BASELINES.sum.sd } });
    expect(plan({ baseline: ['purchase=rate=0.05'] }).baselines.purchase).toEqual({ type: 'conversion', rate: 0.05 });
    expect(usageError(() => parseBaseline('purchase=rate=1.5', metrics))).toBe('--baseline purchase rate must be from 0 to 1, got 1.5');
    expect(usageError(() => parseBaseline('purchase=mean=3', metrics))).toBe("--baseline purchase is a conversion metric: its keys are rate (got 'mean')");
    expect(usageError(() => parseBaseline('latency=rate=0.1', metrics))).toBe("--baseline latency is a sum metric: its keys are mean, sd, dist (got 'rate')");
    expect(usageError(() => parseBaseline('latency=mean', metrics))).toBe("--baseline latency: 'mean' is not key=value");
    expect(usageError(() => parseBaseline('latency=mean=1,mean=2', metrics))).toBe("--baseline latency: 'mean' is given twice");
    expect(usageError(() => parseBaseline('latency=mean=abc', metrics))).toBe("--baseline latency mean must be a finite number, got 'abc'");
    expect(usageError(() => parseBaseline('latency=sd=-1', metrics))).toBe('--baseline latency sd must be from 0 to 1000000000, got -1');
    expect(usageError(() => parseBaseline('latency=mean=1e10', metrics))).toBe('--baseline latency mean must be within ±1000000000, got 10000000000');
    expect(usageError(() => parseBaseline('latency=dist=cauchy', metrics))).toBe("--baseline latency dist must be normal or lognormal, got 'cauchy'");
    expect(usageError(() => parseBaseline('latency=mean=0', metrics))).toBe('--baseline latency: a lognormal metric needs a positive mean (got 0); use dist=normal');
    expect(usageError(() => plan({ baseline: ['purchase=rate=0.2', 'purchase=rate=0.3'] }))).toBe('--baseline purchase is given twice');
  });

  it('an effect moves the mean and keeps the spread; a conversion rate pushed outside [0, 1] is refused', () => {
    const conversion = { type: 'conversion' as const, rate: 0.1 };
    const sum = { type: 'sum' as const, dist: 'lognormal' as const, mean: 200, sd: 50 };
    expect(meanShift(sum, undefined)).toBe(0);
    expect(meanShift(sum, parseEffect('latency=+5', metrics))).toBe(5);
    expect(meanShift(sum, parseEffect('latency=10%', metrics))).toBeCloseTo(20, 12);
    expect(meanShift(sum, parseEffect('latency=0.1sd', metrics))).toBeCloseTo(5, 12);
    expect(meanShift(conversion, parseEffect('purchase=0.1sd', metrics))).toBeCloseTo(0.1 * Math.sqrt(0.09), 12);
    expect(meanShift(conversion, parseEffect('purchase=-20%', metrics))).toBeCloseTo(-0.02, 12);
    expect(usageError(() => valueDraw('purchase', conversion, 0.95))).toBe('--effect purchase: moves the conversion rate from 0.1 to 1.05, outside 0 to 1');
    expect(usageError(() => plan({ effect: ['purchase=-0.2'] }))).toMatch(/^--effect purchase: moves the conversion rate from 0\.1 to -0\.1\d*, outside 0 to 1$/);
    expect(plan({ effect: ['purchase=-0.1'], baseline: ['purchase=rate=0.1'] }).effects).toHaveLength(1);
  });

  it('draws have the baseline mean and sd (plus the shift): normal, lognormal, conversion over 200,000 users', () => {
    const moments = (draw: (r: () => number) => number) => {
      const random = seededRandom(99);
      let s = 0;
      let s2 = 0;
      const n = 200_000;
      for (let i = 0; i < n; i++) {
        const x = draw(random);
        s += x;
        s2 += x * x;
      }
      return { mean: s / n, sd: Math.sqrt((s2 - (s * s) / n) / (n - 1)) };
    };
    // Standard errors: sd/√n ≈ 0.11 for sd 50; 4 standard errors of slack, and a few % for the sd.
    const lognormal = moments(valueDraw('latency', { type: 'sum', dist: 'lognormal', mean: 200, sd: 50 }, 5));
    expect(Math.abs(lognormal.mean - 205)).toBeLessThan(0.5);
    expect(Math.abs(lognormal.sd / 50 - 1)).toBeLessThan(0.03);
    const normal = moments(valueDraw('latency', { type: 'sum', dist: 'normal', mean: -3, sd: 2 }, -1));
    expect(Math.abs(normal.mean + 4)).toBeLessThan(0.02);
    expect(Math.abs(normal.sd / 2 - 1)).toBeLessThan(0.01);
    const conversion = moments(valueDraw('purchase', { type: 'conversion', rate: 0.1 }, 0.02));
    expect(Math.abs(conversion.mean - 0.12)).toBeLessThan(0.003);
  });
});
