import { describe, expect, it } from 'vitest';
import { normalQuantile } from '../../services/stats/normal.ts';
import { usersPerVariantForMeans, usersPerVariantForProportions } from '../../services/stats/sampleSize.ts';

// Reference values computed independently with CPython 3.11's statistics.NormalDist
// (which implements AS 241 separately), e.g.
//   python3 -c "from statistics import NormalDist; print(NormalDist().inv_cdf(0.975))"
// and the same formulas evaluated in Python floats; see sampleSize.ts for the formulas.
describe('normal quantile (AS 241)', () => {
  it.each([
    [0.975, 1.9599639845400536],
    [0.8, 0.8416212335729144],
    [0.999, 3.090232306167813],
    [1e-10, -6.361340902404056],
    [0.5, 0],
  ])('z(%f) = %f', (p, z) => {
    expect(normalQuantile(p)).toBeCloseTo(z, 12);
  });

  it('refuses probabilities outside (0, 1)', () => {
    expect(() => normalQuantile(0)).toThrow(RangeError);
    expect(() => normalQuantile(1)).toThrow(RangeError);
  });
});

describe('users per variant', () => {
  it('for proportions matches the reference (Python: 14750.79..., 15464.65...)', () => {
    expect(usersPerVariantForProportions({ baseline: 0.1, minimumDetectableEffect: 0.01, alpha: 0.05, power: 0.8 })).toEqual({ ok: true, usersPerVariant: 14751 });
    expect(usersPerVariantForProportions({ baseline: 0.05, minimumDetectableEffect: 0.01, alpha: 0.01, power: 0.9 })).toEqual({ ok: true, usersPerVariant: 15465 });
  });

  it('for means matches the reference (Python: 1569.77..., 5093.92...)', () => {
    expect(usersPerVariantForMeans({ standardDeviation: 10, minimumDetectableEffect: 1, alpha: 0.05, power: 0.8 })).toEqual({ ok: true, usersPerVariant: 1570 });
    expect(usersPerVariantForMeans({ standardDeviation: 3.5, minimumDetectableEffect: -0.25, alpha: 0.05, power: 0.95 })).toEqual({ ok: true, usersPerVariant: 5094 });
  });

  it('returns a reason, not a number, when it cannot compute', () => {
    expect(usersPerVariantForMeans({ standardDeviation: 1, minimumDetectableEffect: 0, alpha: 0.05, power: 0.8 })).toMatchObject({ ok: false, reason: 'ZERO_EFFECT' });
    expect(usersPerVariantForProportions({ baseline: 0.99, minimumDetectableEffect: 0.02, alpha: 0.05, power: 0.8 })).toMatchObject({ ok: false, reason: 'INVALID_INPUT' });
    expect(usersPerVariantForMeans({ standardDeviation: 1, minimumDetectableEffect: 1, alpha: 1.5, power: 0.8 })).toMatchObject({ ok: false, reason: 'INVALID_INPUT', detail: expect.stringContaining('alpha') });
  });
});
