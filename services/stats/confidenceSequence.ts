import { normalCdf } from './specialFunctions.ts';
import { meanEstimate, type MeanEstimate, type UserLevelSummary } from './userLevelSummary.ts';

/**
 * Always-valid confidence sequences for the difference of two means, δ = μ_treatment − μ_control,
 * from the normal-mixture mSPRT (Johari, Koomen, Pekelis & Walsh, "Always Valid Inference",
 * Operations Research 2022 / arXiv 2015) in the form of Howard, Ramdas, McAuliffe & Sekhon,
 * "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Ann. Statist. 2021).
 *
 * With v = s_T²/n_T + s_C²/n_C the variance of the estimated difference Δ̂, the process
 * S = (Δ̂ − δ)/v runs in intrinsic time V = 1/v, and a mixture boundary u(V) with
 * P(∃V: S ≥ u(V)) ≤ α gives δ ≥ Δ̂ − v·u(1/v) at every sample size at once (asymptotically,
 * with the sample variances plugged in). It may be checked after every update.
 *
 * - two-sided normal mixture (prior N(0, 1/ρ) on the drift): u(V) = √((V + ρ) log((V + ρ)/(ρα²)));
 *   with τ² = 1/ρ the mixing variance on δ this is the half-width
 *   √( v (v + τ²)/τ² · log((v + τ²) / (v α²)) ).
 * - one-sided normal mixture (half-normal prior on the harmful side): u(V) is the s where
 *   2 √(ρ/(V + ρ)) exp(s²/(2(V + ρ))) Φ(s/√(V + ρ)) = 1/α (no closed form: bisection between the
 *   two-sided boundaries at 2α and α, which bracket it).
 *
 * Tuning: ρ sets the intrinsic time where the boundary is tightest. Howard et al. (2021, the
 * normal mixture's optimal ρ for a target time m; the same in their `confseq` package):
 * two-sided ρ = m / (2 log(1/α) + log(1 + 2 log(1/α))), one-sided the same at 2α. The target is
 * the planned sample size: m = 1/v at n_planned users per variant with today's variances,
 * i.e. m = n_planned / (s_C² + s_T²).
 *
 * An arm is a user-level summary (mean and sample variance from its sums) or any estimate with
 * a per-user variance, such as a ratio metric's delta-method one (./ratioOfMeans.ts).
 */
type Arm = UserLevelSummary | MeanEstimate;
type NotEstimable = { ok: false; reason: 'TOO_FEW_USERS' | 'ZERO_VARIANCE' | 'UNDEFINED_MEAN'; detail: string };
export type ConfidenceSequence =
  | { ok: true; difference: number; lower: number; upper: number; halfWidth: number; variance: number; controlMean: number; treatmentMean: number }
  | NotEstimable;

export function normalMixtureHalfWidth(variance: number, mixingVariance: number, alpha: number): number {
  const v = variance;
  const t2 = mixingVariance;
  return Math.sqrt(((v * (v + t2)) / t2) * Math.log((v + t2) / (v * alpha * alpha)));
}

/** Howard et al. (2021): the two-sided normal mixture's ρ that minimises the boundary at intrinsic time m. */
export function optimalMixtureRho(targetIntrinsicTime: number, alpha: number): number {
  const l = 2 * Math.log(1 / alpha);
  return targetIntrinsicTime / (l + Math.log(1 + l));
}

/**
 * u(V) of the one-sided normal mixture at level alpha (see above); NaN for inputs that are not
 * positive. Safeguarded Newton on the log mixture (increasing in s) inside the bracket the
 * two-sided boundaries at 2α and α give, to a few ulps.
 */
export function oneSidedNormalMixtureBoundary(intrinsicTime: number, rho: number, alpha: number): number {
  const V = intrinsicTime;
  if (!(V > 0 && rho > 0 && alpha > 0 && alpha < 0.5)) return Number.NaN;
  const w = V + rho;
  const root = Math.sqrt(w);
  const constant = 0.5 * Math.log((4 * rho) / w) - Math.log(1 / alpha);
  const twoSided = (a: number) => Math.sqrt(w * (Math.log(1 + V / rho) + 2 * Math.log(1 / a)));
  let low = twoSided(2 * alpha);
  let high = twoSided(alpha);
  if (!Number.isFinite(high)) return high;
  let s = low;
  for (let i = 0; i < 100; i++) {
    const z = s / root;
    const cdf = normalCdf(z);
    const f = constant + (s * s) / (2 * w) + Math.log(cdf);
    if (f < 0) low = s;
    else high = s;
    if (high - low <= 4 * Number.EPSILON * high) break;
    const slope = s / w + Math.exp(-0.5 * z * z) / (Math.sqrt(2 * Math.PI) * cdf * root);
    let next = s - f / slope;
    // Outside the bracket (or no progress): bisect instead.
    if (!(next > low && next < high)) next = (low + high) / 2;
    if (Math.abs(next - s) <= 2 * Number.EPSILON * s) {
      s = next;
      break;
    }
    s = next;
  }
  // Never understated: the upper end when the bracket closed, else the converged root.
  return Math.max(s, low);
}

/** How the mixture is tuned: to the planned users per variant (Howard et al.), or the legacy τ = scale × pooled sd. */
export type MixtureTuning = { plannedUsersPerVariant: number } | { mixingScale: number };

interface Arms {
  variance: number;
  controlMean: number;
  treatmentMean: number;
  difference: number;
  /** s_C² + s_T². */
  spread: number;
}

function arms(controlArm: Arm, treatmentArm: Arm): Arms | NotEstimable {
  const control = meanEstimate(controlArm);
  const treatment = meanEstimate(treatmentArm);
  if (control.users < 2 || treatment.users < 2) return { ok: false, reason: 'TOO_FEW_USERS', detail: 'need at least two users per variant' };
  const controlMean = control.mean;
  const treatmentMean = treatment.mean;
  if (Number.isNaN(controlMean) || Number.isNaN(treatmentMean)) return { ok: false, reason: 'UNDEFINED_MEAN', detail: 'a mean is undefined (a ratio metric whose denominator sums to zero)' };
  const vc = control.variance;
  const vt = treatment.variance;
  const variance = vc / control.users + vt / treatment.users;
  if (!(variance > 0)) return { ok: false, reason: 'ZERO_VARIANCE', detail: 'every user has the same value' };
  return { variance, controlMean, treatmentMean, difference: treatmentMean - controlMean, spread: vc + vt };
}

/** ρ (in intrinsic time, 1/τ²) for the tuning; `sidedAlpha` is α for two-sided, 2α for one-sided sequences. */
function mixtureRho(a: Arms, tuning: MixtureTuning, sidedAlpha: number): number {
  if ('plannedUsersPerVariant' in tuning) return optimalMixtureRho(tuning.plannedUsersPerVariant / a.spread, sidedAlpha);
  const pooledSd = Math.sqrt(a.spread / 2);
  const tau = tuning.mixingScale * (pooledSd > 0 ? pooledSd : 1);
  return 1 / (tau * tau);
}

/**
 * The two-sided sequence. `tuning` defaults to the legacy τ = 0.1 × pooled sd (tightest near
 * 3,200 users per variant whatever the plan); pass the planned users per variant to tune it.
 */
export function differenceConfidenceSequence(control: Arm, treatment: Arm, alpha: number, tuning: MixtureTuning = { mixingScale: 0.1 }): ConfidenceSequence {
  const a = arms(control, treatment);
  if ('ok' in a) return a;
  const rho = mixtureRho(a, tuning, alpha);
  const halfWidth = normalMixtureHalfWidth(a.variance, 1 / rho, alpha);
  return { ok: true, difference: a.difference, lower: a.difference - halfWidth, upper: a.difference + halfWidth, halfWidth, variance: a.variance, controlMean: a.controlMean, treatmentMean: a.treatmentMean };
}

export type OneSidedBound =
  | { ok: true; side: 'lower' | 'upper'; bound: number; difference: number; margin: number; variance: number; rho: number; controlMean: number; treatmentMean: number }
  | NotEstimable;

/**
 * The one-sided always-valid bound on δ at level alpha: `lower` (δ ≥ bound at every sample size
 * with probability ≥ 1 − α; for a metric whose increase is harmful) or `upper` (δ ≤ bound).
 * margin = v·u(1/v) with u the one-sided normal mixture boundary, tuned to the planned sample.
 */
export function oneSidedDifferenceBound(control: Arm, treatment: Arm, options: { alpha: number; side: 'lower' | 'upper'; plannedUsersPerVariant: number }): OneSidedBound {
  const a = arms(control, treatment);
  if ('ok' in a) return a;
  const rho = mixtureRho(a, { plannedUsersPerVariant: options.plannedUsersPerVariant }, 2 * options.alpha);
  const margin = a.variance * oneSidedNormalMixtureBoundary(1 / a.variance, rho, options.alpha);
  const bound = options.side === 'lower' ? a.difference - margin : a.difference + margin;
  return { ok: true, side: options.side, bound, difference: a.difference, margin, variance: a.variance, rho, controlMean: a.controlMean, treatmentMean: a.treatmentMean };
}
