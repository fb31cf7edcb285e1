import { normalQuantile } from './normal.ts';

/**
 * Users needed per variant for a two-sided two-sample test at level alpha with the given
 * power, under the normal approximation (e.g. Chow, Shao & Wang, "Sample Size Calculations
 * in Clinical Research", 2nd ed., sections 3.2.1 and 4.2.1):
 *   means:       n = 2 sd² (z_{1-α/2} + z_{1-β})² / δ²
 *   proportions: n = (z_{1-α/2} √(2 p̄(1-p̄)) + z_{1-β} √(p1(1-p1) + p2(1-p2)))² / (p2-p1)²
 * Rounded up to whole users. Returns a reason instead of a number when it cannot be computed.
 */
export type SampleSize = { ok: true; usersPerVariant: number } | { ok: false; reason: 'ZERO_EFFECT' | 'INVALID_INPUT'; detail: string };

export interface PlanInputs {
  alpha: number;
  power: number;
}

function checkLevels({ alpha, power }: PlanInputs): string | undefined {
  if (!(alpha > 0 && alpha < 1)) return `alpha must be in (0, 1), got ${alpha}`;
  if (!(power > 0 && power < 1)) return `power must be in (0, 1), got ${power}`;
  return undefined;
}

export function usersPerVariantForMeans(inputs: PlanInputs & { standardDeviation: number; minimumDetectableEffect: number }): SampleSize {
  const problem = checkLevels(inputs) ?? (inputs.standardDeviation > 0 && Number.isFinite(inputs.standardDeviation) ? undefined : `standard deviation must be positive, got ${inputs.standardDeviation}`);
  if (problem) return { ok: false, reason: 'INVALID_INPUT', detail: problem };
  if (inputs.minimumDetectableEffect === 0 || !Number.isFinite(inputs.minimumDetectableEffect)) return { ok: false, reason: 'ZERO_EFFECT', detail: 'the minimum detectable effect must be a non-zero number' };
  const z = normalQuantile(1 - inputs.alpha / 2) + normalQuantile(inputs.power);
  return { ok: true, usersPerVariant: Math.ceil((2 * inputs.standardDeviation ** 2 * z * z) / inputs.minimumDetectableEffect ** 2) };
}

export function usersPerVariantForProportions(inputs: PlanInputs & { baseline: number; minimumDetectableEffect: number }): SampleSize {
  const p1 = inputs.baseline;
  const p2 = inputs.baseline + inputs.minimumDetectableEffect;
  const problem = checkLevels(inputs) ?? (p1 > 0 && p1 < 1 ? undefined : `baseline rate must be in (0, 1), got ${p1}`) ?? (p2 > 0 && p2 < 1 ? undefined : `baseline + effect must stay in (0, 1), got ${p2}`);
  if (problem) return { ok: false, reason: 'INVALID_INPUT', detail: problem };
  if (p1 === p2) return { ok: false, reason: 'ZERO_EFFECT', detail: 'the minimum detectable effect must be non-zero' };
  const pooled = (p1 + p2) / 2;
  const numerator = normalQuantile(1 - inputs.alpha / 2) * Math.sqrt(2 * pooled * (1 - pooled)) + normalQuantile(inputs.power) * Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  return { ok: true, usersPerVariant: Math.ceil((numerator * numerator) / (p2 - p1) ** 2) };
}
