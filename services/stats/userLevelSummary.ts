/**
 * Sufficient statistics of a user-level metric in one variant ({ users, sum, sumSquares },
 * additive across partitions and batches) and the mean and sample variance they give.
 */
export interface UserLevelSummary {
  users: number;
  sum: number;
  sumSquares: number;
}

/** A mean with its per-user variance (the variance of the mean is variance / users): what the difference tests take. */
export interface MeanEstimate {
  users: number;
  mean: number;
  variance: number;
}

/** The estimate a summary gives: its own mean and variance when it carries them (a ratio's delta method), else those of its sums. */
export function meanEstimate(s: UserLevelSummary | MeanEstimate): MeanEstimate {
  return 'mean' in s ? s : { users: s.users, mean: mean(s), variance: sampleVariance(s) };
}

export function mean(s: UserLevelSummary): number {
  return s.users === 0 ? Number.NaN : s.sum / s.users;
}

/**
 * Unbiased sample variance (Σx² − (Σx)²/n) / (n − 1), evaluated so that the subtraction
 * itself adds no rounding: (Σx)² is formed exactly as a double-double (Dekker's product), its
 * quotient by n carries its remainder, and Σx² minus the quotient's high part is exact when
 * the two are close (Sterbenz), which is exactly the case of a large mean and a small spread
 * where the textbook formula cancels catastrophically (mean 1e7, sd 1: the naive form loses
 * about 2 of its 16 digits; ± 2 % in the test's example). The result is the variance of the
 * stored sums to within a few ulps of Σx²/(n − 1).
 *
 * Precision: what remains is the rounding already in the stored Σx and Σx² (each addition
 * rounds by at most half an ulp of the running total), so the relative error of the variance
 * is about k·2⁻⁵³·Σx²/(Σx² − (Σx)²/n) after k additions; for mean/sd below 1e4 and a million
 * additions that is under 1e-6. Clamped at 0 when every user has the same value (and for
 * inconsistent sums whose (Σx)²/n exceeds Σx²).
 */
export function sampleVariance(s: UserLevelSummary): number {
  if (s.users < 2) return Number.NaN;
  return Math.max(0, centredSumOfSquares(s) / (s.users - 1));
}

/** Σ(x − x̄)² = Σx² − (Σx)²/n from the sums, without cancellation in the subtraction (see sampleVariance). */
export function centredSumOfSquares(s: UserLevelSummary): number {
  const n = s.users;
  const [ph, pl] = twoProduct(s.sum, s.sum);
  // (Σx)² past the largest double: (Σx/n)·Σx, which for consistent sums stays below Σx².
  if (!Number.isFinite(ph)) return s.sumSquares - (s.sum / n) * s.sum;
  const q = ph / n;
  // ph − q·n exactly (q·n as a double-double), plus pl: the part of (Σx)² that q misses.
  const [qh, ql] = twoProduct(q, n);
  const remainder = (ph - qh - ql + pl) / n;
  return s.sumSquares - q - remainder;
}

const SPLITTER = 134_217_729; // 2^27 + 1 (Dekker)

/** a·b as hi + lo exactly (Dekker 1971; Ogita, Rump & Oishi 2005 TwoProduct), for |a·b| far from overflow. */
function twoProduct(a: number, b: number): [number, number] {
  const p = a * b;
  if (!Number.isFinite(p) || Math.abs(a) > 1e150 || Math.abs(b) > 1e150) return [p, 0];
  const [ah, al] = split(a);
  const [bh, bl] = split(b);
  return [p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)];
}

function split(a: number): [number, number] {
  const c = SPLITTER * a;
  const high = c - (c - a);
  return [high, a - high];
}
