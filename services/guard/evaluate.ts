import type { PublishedDefinition } from '../common/experimentDefinition.ts';
import { nonFinitePaths } from '../common/numberBounds.ts';
import type { ExperimentState } from './experimentState.ts';
import { checkInput, type Signal as CheckSignal } from './checks/guardCheck.ts';
import { guardChecks, type SignalType } from './checks/index.ts';

/**
 * The guard's decisions for one experiment, from its current totals: every check registered
 * in ./checks/index.ts, in order. Returns the signals whose incident has not been raised yet.
 * Policy (each check's module says more):
 * - SAMPLE_RATIO_MISMATCH (sequential Dirichlet-multinomial test at the definition's SRM
 *   threshold): critical, halts;
 * - GUARDRAIL_REGRESSION (confidence sequence of treatment − control excludes the tolerance
 *   on the harmful side): critical, halts;
 * - USERS_IN_TWO_VARIANTS (over 1 % of users, at least 20): warning;
 * - VARIANT_RATE_COLLAPSE (a variant's exposures in the last complete minute under a tenth
 *   of its planned share, with at least 50 exposures that minute): warning.
 * SRM and guardrail decisions wait until every variant has the minimum sample size; the
 * data-quality signals do not.
 *
 * Numbers: a bound, mean or tolerance that is not a finite number decides nothing (like a
 * zero variance), and no signal leaves with a NaN or an infinity in its evidence (JSON would
 * print it as null, and the evidence is what a halt is audited by): such a signal is
 * withheld and handed to `withheld` with the paths of the offending numbers, for the
 * caller to log and count.
 */
export type Signal = CheckSignal<SignalType>;

export type WithheldSignal = (signal: Signal, nonFinite: string[]) => void;

export function evaluateExperiment(state: ExperimentState, published: PublishedDefinition, withheld: WithheldSignal = () => {}): Signal[] {
  const input = checkInput(state, published);
  const sampled = Math.min(...input.users) >= published.definition.minimumSampleSize;
  const signals: Signal[] = [];
  for (const check of guardChecks) {
    if (check.waitsForMinimumSample && !sampled) continue;
    for (const signal of check.signals(input)) {
      if (state.incidents[signal.incident]) continue;
      const nonFinite = nonFinitePaths(signal.evidence, 'evidence');
      if (nonFinite.length > 0) withheld(signal, nonFinite);
      else signals.push(signal);
    }
  }
  return signals;
}
