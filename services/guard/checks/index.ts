import { guardrailRegression } from './guardrailRegression.ts';
import { noTraffic } from './noTraffic.ts';
import { sampleRatioMismatch } from './sampleRatioMismatch.ts';
import { usersInTwoVariants } from './usersInTwoVariants.ts';
import { variantRateCollapse } from './variantRateCollapse.ts';

/**
 * Every check the guard runs, in the order their signals are raised (and halts published).
 * A new check: its test in services/stats, a module here implementing GuardCheck, one line below.
 */
export const guardChecks = [
  sampleRatioMismatch,
  guardrailRegression,
  usersInTwoVariants,
  variantRateCollapse,
  noTraffic,
] as const;

export type SignalType = (typeof guardChecks)[number]['type'];
