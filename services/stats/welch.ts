import { studentTQuantile, studentTUpperTail } from './specialFunctions.ts';
import { mean, sampleVariance, type UserLevelSummary } from './userLevelSummary.ts';

/**
 * Welch's unequal-variance t test and interval for μ_treatment − μ_control (Welch 1947;
 * Satterthwaite 1946 degrees of freedom). Fixed-horizon: for reporting at the planned sample
 * size, not for repeated looks (see confidenceSequence.ts).
 */
export type WelchResult =
  | { ok: true; difference: number; standardError: number; t: number; degreesOfFreedom: number; pValue: number; lower: number; upper: number }
  | { ok: false; reason: 'TOO_FEW_USERS' | 'ZERO_VARIANCE'; detail: string };

export function welchTest(control: UserLevelSummary, treatment: UserLevelSummary, alpha = 0.05): WelchResult {
  if (control.users < 2 || treatment.users < 2) return { ok: false, reason: 'TOO_FEW_USERS', detail: 'need at least two users per variant' };
  const ac = sampleVariance(control) / control.users;
  const at = sampleVariance(treatment) / treatment.users;
  const variance = ac + at;
  if (!(variance > 0)) return { ok: false, reason: 'ZERO_VARIANCE', detail: 'every user has the same value' };
  const standardError = Math.sqrt(variance);
  const difference = mean(treatment) - mean(control);
  const t = difference / standardError;
  // Satterthwaite, in shares of the variance so that no square overflows: 1 / Σ (a_i/v)² / (n_i − 1).
  const degreesOfFreedom = 1 / ((ac / variance) ** 2 / (control.users - 1) + (at / variance) ** 2 / (treatment.users - 1));
  const pValue = Math.min(1, 2 * studentTUpperTail(Math.abs(t), degreesOfFreedom));
  const margin = studentTQuantile(1 - alpha / 2, degreesOfFreedom) * standardError;
  return { ok: true, difference, standardError, t, degreesOfFreedom, pValue, lower: difference - margin, upper: difference + margin };
}
