import { regularizedGammaQ } from './specialFunctions.ts';

/**
 * Pearson's chi-square goodness-of-fit test of observed counts against planned weights:
 * X² = Σ (O_i − E_i)² / E_i with E_i = N·w_i, k − 1 degrees of freedom, p = Q((k−1)/2, X²/2).
 * A fixed-horizon test: valid when looked at once, not after every update (see sequentialSrm.ts).
 */
export type ChiSquareResult = { ok: true; statistic: number; degreesOfFreedom: number; pValue: number } | { ok: false; reason: 'TOO_FEW_USERS' | 'INVALID_INPUT'; detail: string };

export function chiSquareGoodnessOfFit(observed: readonly number[], weights: readonly number[]): ChiSquareResult {
  if (observed.length !== weights.length || observed.length < 2) return { ok: false, reason: 'INVALID_INPUT', detail: 'need as many weights as counts, at least two' };
  const totalWeight = weights.reduce((s, w) => s + w, 0);
  if (weights.some((w) => !(w > 0)) || Math.abs(totalWeight - 1) > 1e-9) return { ok: false, reason: 'INVALID_INPUT', detail: 'weights must be positive and sum to 1' };
  const n = observed.reduce((s, o) => s + o, 0);
  if (n === 0) return { ok: false, reason: 'TOO_FEW_USERS', detail: 'no users yet' };
  let statistic = 0;
  observed.forEach((o, i) => {
    const expected = n * weights[i]!;
    statistic += ((o - expected) * (o - expected)) / expected;
  });
  const degreesOfFreedom = observed.length - 1;
  return { ok: true, statistic, degreesOfFreedom, pValue: regularizedGammaQ(degreesOfFreedom / 2, statistic / 2) };
}
