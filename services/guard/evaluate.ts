import type { PublishedDefinition } from '../common/experimentDefinition.ts';
import { checkActions } from '../common/guardPolicy.ts';
import { nonFinitePaths } from '../common/numberBounds.ts';
import type { ExperimentState } from './experimentState.ts';
import { checkInput, type Signal as CheckSignal } from './checks/guardCheck.ts';
import { guardChecks, type SignalType } from './checks/index.ts';

/**
 * The guard's decisions for one experiment, from its current totals: every check registered
 * in ./checks/index.ts, in order. Returns the signals whose incident has not been raised yet.
 * Policy (each check's module says more; what halts is the definition's `checks`, defaults in
 * services/common/guardPolicy.ts):
 * - SAMPLE_RATIO_MISMATCH (sequential Dirichlet-multinomial test at SRM's share of the
 *   false-halt budget): critical, halts;
 * - GUARDRAIL_REGRESSION (one-sided confidence sequence of treatment − control beyond the
 *   tolerance on the harmful side, at each test's share of the budget): critical, halts;
 * - USERS_IN_TWO_VARIANTS (over 1 % of users, at least 20): warning;
 * - VARIANT_RATE_COLLAPSE (a variant's exposures in the last complete minute under a tenth
 *   of its planned share, with at least 50 exposures that minute): warning;
 * - NO_TRAFFIC (no exposures for the definition's `noTrafficMinutes`, given `now`): warning.
 * A check set to 'halt' raises a critical, halting signal; set to 'warn', a warning that halts
 * nothing (an anomaly without a command). SRM waits until all variants together have the
 * minimum sample size (a variant with no users is a mismatch, not a reason to wait); the
 * guardrails until every variant has it; the data-quality signals do not wait.
 *
 * Numbers: a bound, mean or tolerance that is not a finite number decides nothing (like a
 * zero variance), and no signal leaves with a NaN or an infinity in its evidence (JSON would
 * print it as null, and the evidence is what a halt is audited by): such a signal is
 * withheld and handed to `withheld` with the paths of the offending numbers, for the
 * caller to log and count.
 */
export type Signal = CheckSignal<SignalType>;

export type WithheldSignal = (signal: Signal, nonFinite: string[]) => void;

/** `now` (wall-clock ms) lets time-based checks (NO_TRAFFIC) decide; without it they stay quiet. */
export function evaluateExperiment(state: ExperimentState, published: PublishedDefinition, withheld: WithheldSignal = () => {}, now?: number): Signal[] {
  const input = checkInput(state, published, now);
  const { minimumSampleSize } = published.definition;
  const sampled = { everyVariant: Math.min(...input.users) >= minimumSampleSize, total: input.users.reduce((a, b) => a + b, 0) >= minimumSampleSize };
  const actions = checkActions(published.definition);
  const signals: Signal[] = [];
  for (const check of guardChecks) {
    if (check.waitsForMinimumSample && !sampled[check.minimumSampleOf ?? 'everyVariant']) continue;
    const action = check.setting === undefined ? undefined : actions[check.setting];
    for (const raised of check.signals(input)) {
      if (state.incidents[raised.incident]) continue;
      const signal: Signal = action === undefined ? raised : { ...raised, halt: action === 'halt', severity: action === 'halt' ? 'critical' : 'warning' };
      const nonFinite = nonFinitePaths(signal.evidence, 'evidence');
      if (nonFinite.length > 0) withheld(signal, nonFinite);
      else signals.push(signal);
    }
  }
  return signals;
}
