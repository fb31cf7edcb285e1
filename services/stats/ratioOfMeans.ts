/**
 * A ratio metric per variant: R = Σx / Σy over users (numerator x and denominator y of the same
 * user, e.g. errors ÷ requests), the ratio of the two means, with its variance by the delta
 * method (Deng, Knoblich & Lu, "Applying the Delta Method in Metric Analytics", KDD 2018):
 *
 *   Var(R̂) ≈ (s_x² − 2 R s_xy + R² s_y²) / (n ȳ²)
 *
 * from the additive sums alone (users, Σx, Σx², Σy, Σy², Σxy). Because Σx − R Σy = 0, the
 * bracket times n − 1 is exactly Σx² − 2 R Σxy + R² Σy² (the sum of squares of the linearised
 * residual x − R y, whose mean is 0), which is what is evaluated: no (Σ)²/n terms to cancel.
 * `variance` is per user (the variance of R̂ is variance / users), like a sample variance, so
 * the difference tests of ./confidenceSequence.ts and ./welch.ts take it as they take a mean's.
 * Pure; NaN (never a throw) where it cannot be estimated: no users or Σy = 0 (ratio), under
 * two users (variance).
 */
export interface RatioSums {
  users: number;
  sumX: number;
  sumSquaresX: number;
  sumY: number;
  sumSquaresY: number;
  sumXY: number;
}

export interface RatioEstimate {
  /** Σx / Σy. */
  ratio: number;
  /** Per-user delta-method variance: n · Var(R̂). */
  variance: number;
  numeratorMean: number;
  denominatorMean: number;
}

export function ratioOfMeans(s: RatioSums): RatioEstimate {
  const n = s.users;
  const numeratorMean = n > 0 ? s.sumX / n : Number.NaN;
  const denominatorMean = n > 0 ? s.sumY / n : Number.NaN;
  const ratio = n > 0 && s.sumY !== 0 ? s.sumX / s.sumY : Number.NaN;
  if (n < 2 || !Number.isFinite(ratio)) return { ratio, variance: Number.NaN, numeratorMean, denominatorMean };
  const residualSquares = s.sumSquaresX - 2 * ratio * s.sumXY + ratio * ratio * s.sumSquaresY;
  const variance = Math.max(0, residualSquares) / ((n - 1) * denominatorMean * denominatorMean);
  return { ratio, variance, numeratorMean, denominatorMean };
}
