import { logGamma } from './specialFunctions.ts';

/**
 * Anytime-valid sample ratio mismatch test: the Dirichlet-multinomial Bayes factor of
 * Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data" (NeurIPS 2022).
 * Under H0 the assignment probabilities are the planned weights θ0; under H1 they have a
 * Dirichlet(α) prior. With counts x:
 *   BF = [B(α + x) / B(α)] / Π θ0_i^{x_i},   B(a) = Π Γ(a_i) / Γ(Σ a_i).
 * BF is a nonnegative martingale under H0, so by Ville's inequality P(sup BF ≥ 1/α) ≤ α:
 * it may be checked after every update. The anytime p-value is min(1, 1 / max BF so far).
 * The prior is centred on the null, α_i = concentration · θ0_i (a larger concentration
 * favours detecting small mismatches, a smaller one large mismatches quickly).
 */
// Not configuration (so not in services/common/config.ts): the prior is part of the test's
// definition, and stats imports nothing of the project.
export const DEFAULT_SRM_CONCENTRATION = 100;

export interface SequentialSrmResult {
  logBayesFactor: number;
  bayesFactor: number;
  /** 1 / BF of this look, capped at 1; take the running minimum for the anytime p-value. */
  pValue: number;
  /** True when BF ≥ 1/alpha. */
  mismatch: boolean;
}

export function sequentialSrm(observed: readonly number[], weights: readonly number[], alpha: number, concentration = DEFAULT_SRM_CONCENTRATION): SequentialSrmResult {
  const prior = weights.map((w) => concentration * w);
  const logB = (a: readonly number[]) => a.reduce((s, v) => s + logGamma(v), 0) - logGamma(a.reduce((s, v) => s + v, 0));
  const posterior = prior.map((a, i) => a + observed[i]!);
  const logNull = observed.reduce((s, x, i) => s + (x === 0 ? 0 : x * Math.log(weights[i]!)), 0);
  const logBayesFactor = logB(posterior) - logB(prior) - logNull;
  const bayesFactor = Math.exp(logBayesFactor);
  return { logBayesFactor, bayesFactor, pValue: Math.min(1, Math.exp(-logBayesFactor)), mismatch: logBayesFactor >= Math.log(1 / alpha) };
}
