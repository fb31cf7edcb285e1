import { mean, sampleVariance, type UserLevelSummary } from './userLevelSummary.ts';

/**
 * Always-valid confidence sequence for the difference of two means, δ = μ_treatment − μ_control,
 * from the normal-mixture mSPRT (Johari, Koomen, Pekelis & Walsh, "Always Valid Inference",
 * Operations Research 2022 / arXiv 2015) in the form of Howard, Ramdas, McAuliffe & Sekhon,
 * "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Ann. Statist. 2021),
 * two-sided normal mixture boundary. With v = s_T²/n_T + s_C²/n_C the variance of the
 * estimated difference and mixing variance τ² (prior N(0, τ²) on δ):
 *   δ ∈ Δ̂ ± √( v (v + τ²)/τ² · log((v + τ²) / (v α²)) )
 * holds for all sample sizes simultaneously with probability ≥ 1 − α (asymptotically, with
 * the sample variances plugged in). It may be checked after every update.
 */
export type ConfidenceSequence =
  | { ok: true; difference: number; lower: number; upper: number; halfWidth: number; variance: number; controlMean: number; treatmentMean: number }
  | { ok: false; reason: 'TOO_FEW_USERS' | 'ZERO_VARIANCE'; detail: string };

export function normalMixtureHalfWidth(variance: number, mixingVariance: number, alpha: number): number {
  const v = variance;
  const t2 = mixingVariance;
  return Math.sqrt(((v * (v + t2)) / t2) * Math.log((v + t2) / (v * alpha * alpha)));
}

/**
 * `mixingScale` sets τ = mixingScale × the pooled per-user standard deviation: the size of
 * effect the sequence is most sensitive to, in units of the metric's spread.
 */
export function differenceConfidenceSequence(control: UserLevelSummary, treatment: UserLevelSummary, alpha: number, mixingScale = 0.1): ConfidenceSequence {
  if (control.users < 2 || treatment.users < 2) return { ok: false, reason: 'TOO_FEW_USERS', detail: 'need at least two users per variant' };
  const vc = sampleVariance(control);
  const vt = sampleVariance(treatment);
  const variance = vc / control.users + vt / treatment.users;
  if (!(variance > 0)) return { ok: false, reason: 'ZERO_VARIANCE', detail: 'every user has the same value' };
  const pooledSd = Math.sqrt((vc + vt) / 2);
  const tau = mixingScale * (pooledSd > 0 ? pooledSd : 1);
  const halfWidth = normalMixtureHalfWidth(variance, tau * tau, alpha);
  const controlMean = mean(control);
  const treatmentMean = mean(treatment);
  const difference = treatmentMean - controlMean;
  return { ok: true, difference, lower: difference - halfWidth, upper: difference + halfWidth, halfWidth, variance, controlMean, treatmentMean };
}
