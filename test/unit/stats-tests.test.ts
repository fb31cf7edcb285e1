import { describe, expect, it } from 'vitest';
import { chiSquareGoodnessOfFit } from '../../services/stats/chiSquare.ts';
import { differenceConfidenceSequence, normalMixtureHalfWidth, oneSidedDifferenceBound, oneSidedNormalMixtureBoundary, optimalMixtureRho } from '../../services/stats/confidenceSequence.ts';
import { sequentialSrm } from '../../services/stats/sequentialSrm.ts';
import { logGamma, normalCdf, regularizedGammaQ, studentTQuantile, studentTUpperTail } from '../../services/stats/specialFunctions.ts';
import { sampleVariance, type UserLevelSummary } from '../../services/stats/userLevelSummary.ts';
import { welchTest } from '../../services/stats/welch.ts';

// Reference values: published tables where they exist, otherwise computed independently
// with SciPy 1.17.1 (scipy.stats.chisquare, chi2.sf, t.ppf, t.sf, ttest_ind_from_stats with
// equal_var=False) and CPython's math.lgamma, as noted at each value.

const summary = (n: number, m: number, sd: number): UserLevelSummary => ({ users: n, sum: n * m, sumSquares: (n - 1) * sd * sd + n * m * m });

describe('special functions', () => {
  it('log-gamma matches Γ(n) = (n−1)! and Γ(1/2) = √π', () => {
    expect(logGamma(10)).toBeCloseTo(Math.log(362_880), 10);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
    expect(logGamma(100.5)).toBeCloseTo(361.4355404677776, 9); // math.lgamma(100.5)
    expect(logGamma(1000.25)).toBeCloseTo(5906.947268271117, 8); // math.lgamma(1000.25)
  });

  it('chi-square tail: table critical values (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.4)', () => {
    expect(regularizedGammaQ(0.5, 3.841 / 2)).toBeCloseTo(0.05, 4);
    expect(regularizedGammaQ(1, 5.991 / 2)).toBeCloseTo(0.05, 4);
    expect(regularizedGammaQ(0.5, 10.828 / 2)).toBeCloseTo(0.0009997657195830916, 9); // chi2.sf(10.828, 1)
    expect(regularizedGammaQ(2.5, 1.5)).toBeCloseTo(0.6999858358786276, 10); // chi2.sf(3.0, 5)
    expect(regularizedGammaQ(1.5, 12.5)).toBeCloseTo(1.5440498291101365e-5, 12); // chi2.sf(25.0, 3)
  });

  it('Student t: table quantiles and a SciPy tail', () => {
    expect(studentTQuantile(0.975, 10)).toBeCloseTo(2.228138851986274, 8);
    expect(studentTQuantile(0.975, 30)).toBeCloseTo(2.0422724563012378, 8);
    expect(studentTQuantile(0.995, 5)).toBeCloseTo(4.032142983555228, 8);
    expect(2 * studentTUpperTail(2, 7.5)).toBeCloseTo(0.08289699529816631, 10); // 2*t.sf(2.0, 7.5)
  });
});

describe('chi-square goodness of fit', () => {
  it('matches scipy.stats.chisquare', () => {
    expect(chiSquareGoodnessOfFit([5120, 4880], [0.5, 0.5])).toMatchObject({ ok: true, statistic: 5.76, degreesOfFreedom: 1 });
    const two = chiSquareGoodnessOfFit([5120, 4880], [0.5, 0.5]);
    expect(two.ok && two.pValue).toBeCloseTo(0.01639507184919225, 10);
    const four = chiSquareGoodnessOfFit([1000, 1100, 950, 1050], [0.25, 0.25, 0.25, 0.25]);
    expect(four.ok && four.statistic).toBeCloseTo(12.195121951219512, 10);
    expect(four.ok && four.pValue).toBeCloseTo(0.00674378544465244, 10);
  });

  it('gives reasons instead of numbers when it cannot run', () => {
    expect(chiSquareGoodnessOfFit([0, 0], [0.5, 0.5])).toMatchObject({ ok: false, reason: 'TOO_FEW_USERS' });
    expect(chiSquareGoodnessOfFit([1, 2], [0.5, 0.6])).toMatchObject({ ok: false, reason: 'INVALID_INPUT' });
  });
});

describe('sequential SRM (Dirichlet-multinomial Bayes factor)', () => {
  it('matches the closed form computed with math.lgamma', () => {
    expect(sequentialSrm([520, 480], [0.5, 0.5], 0.05).logBayesFactor).toBeCloseTo(-0.47312523367099857, 9);
    expect(sequentialSrm([600, 400], [0.5, 0.5], 0.05).logBayesFactor).toBeCloseTo(17.09894041645066, 9);
    expect(sequentialSrm([30, 40, 30], [0.25, 0.5, 0.25], 0.05, 10).logBayesFactor).toBeCloseTo(-0.704697386180257, 9);
  });

  it('equals the product of posterior-predictive ratios, the sequential form of the same martingale', () => {
    const weights = [0.2, 0.3, 0.5];
    const concentration = 7;
    const sequence = [0, 2, 2, 1, 0, 0, 2, 1, 1, 2, 0, 2, 2, 2, 1, 0];
    const counts = [0, 0, 0];
    let logProduct = 0;
    sequence.forEach((arm, t) => {
      logProduct += Math.log((concentration * weights[arm]! + counts[arm]!) / (concentration + t)) - Math.log(weights[arm]!);
      counts[arm]! += 1;
    });
    expect(sequentialSrm(counts, weights, 0.05, concentration).logBayesFactor).toBeCloseTo(logProduct, 10);
  });

  it('flags a mismatch when BF ≥ 1/alpha', () => {
    expect(sequentialSrm([600, 400], [0.5, 0.5], 0.001).mismatch).toBe(true);
    expect(sequentialSrm([520, 480], [0.5, 0.5], 0.001).mismatch).toBe(false);
  });
});

describe('normal-mixture confidence sequence', () => {
  it('equals Howard et al. (2021) two-sided normal mixture |S| < √((V+ρ) log((V+ρ)/(ρα²))) under S = Δ/v, V = 1/v, ρ = 1/τ²', () => {
    for (const [v, t2, alpha] of [[0.04, 0.01, 0.05], [1e-4, 0.5, 0.001], [3, 0.2, 0.1]] as const) {
      const V = 1 / v;
      const rho = 1 / t2;
      const howard = v * Math.sqrt((V + rho) * Math.log((V + rho) / (rho * alpha * alpha)));
      expect(normalMixtureHalfWidth(v, t2, alpha)).toBeCloseTo(howard, 12);
    }
    expect(normalMixtureHalfWidth(0.04, 0.01, 0.05)).toBeCloseTo(1.114863946714772, 12); // Python, same formula
  });

  it('is wider than the fixed-horizon interval and shrinks as users arrive', () => {
    const small = differenceConfidenceSequence(summary(200, 10, 2), summary(200, 10.5, 2), 0.05);
    const large = differenceConfidenceSequence(summary(20_000, 10, 2), summary(20_000, 10.5, 2), 0.05);
    const welch = welchTest(summary(200, 10, 2), summary(200, 10.5, 2), 0.05);
    if (!small.ok || !large.ok || !welch.ok) throw new Error('expected results');
    expect(small.halfWidth).toBeGreaterThan((welch.upper - welch.lower) / 2);
    expect(large.halfWidth).toBeLessThan(small.halfWidth / 5);
    expect(large.lower).toBeGreaterThan(0);
  });

  it('returns reasons for too few users and zero variance', () => {
    expect(differenceConfidenceSequence(summary(1, 1, 0), summary(10, 1, 1), 0.05)).toMatchObject({ ok: false, reason: 'TOO_FEW_USERS' });
    expect(differenceConfidenceSequence(summary(10, 1, 0), summary(10, 1, 0), 0.05)).toMatchObject({ ok: false, reason: 'ZERO_VARIANCE' });
  });
});

describe('Welch test', () => {
  it('matches scipy.stats.ttest_ind_from_stats(equal_var=False) and the t interval', () => {
    const result = welchTest(summary(50, 10, 2), summary(40, 11, 3), 0.05);
    if (!result.ok) throw new Error(result.reason);
    expect(result.t).toBeCloseTo(1.8107149208503706, 9);
    expect(result.pValue).toBeCloseTo(0.07479873860026835, 9);
    expect(result.degreesOfFreedom).toBeCloseTo(65.11213361536137, 8);
    expect(result.upper - result.difference).toBeCloseTo(1.1029194518436245, 7);
  });
});

// Reference values below: test/unit/reference/guard_statistics.py (SciPy 1.17.1 and exact
// rationals), independent of services/stats; the precision asserted is stated at each.
describe('Student t quantile far in the tails', () => {
  it('brackets any quantile: 1 df at p = 0.999999 is 318,309.886…, not the old bracket end 1000', () => {
    const cases: [number, number, number][] = [
      [0.999999, 1, 318309.88617359026],
      [1e-9, 3, -1033.1096745038078],
      [0.999, 2.5, 13.82219311086596],
      [0.9995, 1000, 3.300282648423944],
      [0.975, 10, 2.228138851986274],
    ];
    for (const [p, df, expected] of cases) expect(Math.abs(studentTQuantile(p, df) / expected - 1)).toBeLessThan(1e-12); // t.ppf, relative 1e-12
    expect(studentTQuantile(0.5, 4)).toBe(0);
    expect(studentTQuantile(0.9, Number.NaN)).toBeNaN();
  });

  it('normal CDF matches norm.cdf to 1e-15', () => {
    expect(normalCdf(1.96)).toBeCloseTo(0.9750021048517795, 15);
    expect(normalCdf(-3)).toBeCloseTo(0.0013498980316300933, 15);
    expect(normalCdf(0)).toBe(0.5);
  });
});

describe('sample variance from the sums, without cancellation', () => {
  it('is the exact variance of the stored sums (Fraction arithmetic) where the textbook formula is off by 1 %', () => {
    // 1e7 + 1, 1e7 + 2, 1e7 + 4: Σx and Σx² are exact doubles; the variance is 7/3.
    const s = { users: 3, sum: 30000007, sumSquares: 300000140000021 };
    expect(sampleVariance(s)).toBeCloseTo(2.3333333333333335, 14);
    const textbook = (s.sumSquares - s.users * (s.sum / s.users) ** 2) / (s.users - 1);
    expect(Math.abs(textbook - 7 / 3)).toBeGreaterThan(0.01);
    // Sums that are themselves rounded (Σx² ≈ 6.1e16, an ulp of 8): the variance of what is stored.
    expect(sampleVariance({ users: 4, sum: 493827159.5, sumSquares: 6.096631586495962e16 })).toBeCloseTo(1.9791666666666667, 13);
    expect(sampleVariance({ users: 4, sum: 40, sumSquares: 400 })).toBe(0);
  });
});

describe('one-sided normal mixture, tuned to the plan (Howard et al. 2021)', () => {
  it('boundary u(V; ρ, α) matches a SciPy root of 2√(ρ/(V+ρ)) e^{s²/2(V+ρ)} Φ(s/√(V+ρ)) = 1/α to 1e-12', () => {
    const cases: [number, number, number, number][] = [
      [100, 10, 0.05, 27.771028675402874],
      [1e4, 500, 0.001, 403.0820438418896],
      [50, 200, 0.00133, 54.96023766897917],
    ];
    for (const [V, rho, alpha, expected] of cases) expect(Math.abs(oneSidedNormalMixtureBoundary(V, rho, alpha) / expected - 1)).toBeLessThan(1e-12);
  });

  it('the optimal ρ for a target time, and the one-sided bound beats the two-sided one on the harmful side', () => {
    expect(optimalMixtureRho(12.5, 0.08)).toBeCloseTo(1.8243497374496895, 13);
    expect(optimalMixtureRho(1e4, 0.1)).toBeCloseTo(1580.063490685053, 9);
    const control = summary(1_000, 100, 20);
    const treatment = summary(1_000, 106, 20);
    const one = oneSidedDifferenceBound(control, treatment, { alpha: 0.04, side: 'lower', plannedUsersPerVariant: 10_000 });
    const two = differenceConfidenceSequence(control, treatment, 0.04, { plannedUsersPerVariant: 10_000 });
    if (!one.ok || !two.ok) throw new Error('expected results');
    expect(one.bound).toBeCloseTo(6 - 3.3168751795418334, 9); // margin by SciPy (guard_statistics.py)
    expect(one.bound).toBeGreaterThan(two.lower);
    const upper = oneSidedDifferenceBound(control, treatment, { alpha: 0.04, side: 'upper', plannedUsersPerVariant: 10_000 });
    expect(upper.ok && upper.bound).toBeCloseTo(6 + 3.3168751795418334, 9);
  });
});
