import { studentTQuantile, studentTUpperTail } from './specialFunctions.ts';
import { meanEstimate, type MeanEstimate, type UserLevelSummary } from './userLevelSummary.ts';

/**
 * Welch's unequal-variance t test and interval for μ_treatment − μ_control (Welch 1947;
 * Satterthwaite 1946 degrees of freedom). Fixed-horizon: for reporting at the planned sample
 * size, not for repeated looks (see confidenceSequence.ts). An arm is a user-level summary or an
 * estimate with a per-user variance (a ratio metric's delta method, ./ratioOfMeans.ts).
 */
export type WelchResult =
  | { ok: true; difference: number; standardError: number; t: number; degreesOfFreedom: number; pValue: number; lower: number; upper: number }
  | { ok: false; reason: 'TOO_FEW_USERS' | 'ZERO_VARIANCE' | 'UNDEFINED_MEAN'; detail: string };

export function welchTest(controlArm: UserLevelSummary | MeanEstimate, treatmentArm: UserLevelSummary | MeanEstimate, alpha = 0.05): WelchResult {
  const control = meanEstimate(controlArm);
  const treatment = meanEstimate(treatmentArm);
  if (control.users < 2 || treatment.users < 2) return { ok: false, reason: 'TOO_FEW_USERS', detail: 'need at least two users per variant' };
  if (Number.isNaN(control.mean) || Number.isNaN(treatment.mean)) return { ok: false, reason: 'UNDEFINED_MEAN', detail: 'a mean is undefined (a ratio metric whose denominator sums to zero)' };
  const ac = control.variance / control.users;
  const at = treatment.variance / treatment.users;
  const variance = ac + at;
  if (!(variance > 0)) return { ok: false, reason: 'ZERO_VARIANCE', detail: 'every user has the same value' };
  const standardError = Math.sqrt(variance);
  const difference = treatment.mean - control.mean;
  const t = difference / standardError;
  // Satterthwaite, in shares of the variance so that no square overflows: 1 / Σ (a_i/v)² / (n_i − 1).
  const degreesOfFreedom = 1 / ((ac / variance) ** 2 / (control.users - 1) + (at / variance) ** 2 / (treatment.users - 1));
  const pValue = Math.min(1, 2 * studentTUpperTail(Math.abs(t), degreesOfFreedom));
  const margin = studentTQuantile(1 - alpha / 2, degreesOfFreedom) * standardError;
  return { ok: true, difference, standardError, t, degreesOfFreedom, pValue, lower: difference - margin, upper: difference + margin };
}
