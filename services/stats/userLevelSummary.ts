/**
 * Sufficient statistics of a user-level metric in one variant ({ users, sum, sumSquares },
 * additive across partitions and batches) and the mean and sample variance they give.
 */
export interface UserLevelSummary {
  users: number;
  sum: number;
  sumSquares: number;
}

export function mean(s: UserLevelSummary): number {
  return s.users === 0 ? Number.NaN : s.sum / s.users;
}

/** Unbiased sample variance; clamped at 0 against rounding when every user has the same value. */
export function sampleVariance(s: UserLevelSummary): number {
  if (s.users < 2) return Number.NaN;
  const m = s.sum / s.users;
  return Math.max(0, (s.sumSquares - s.users * m * m) / (s.users - 1));
}
