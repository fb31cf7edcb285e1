import { oneSidedDifferenceBound } from '../stats/confidenceSequence.ts';
import { toSummary, type VariantMetrics } from '../stats/metricStatistics.ts';
import { CHECK_SETTINGS, type CheckAction, type CheckSetting, type ExperimentDefinition, type GuardrailDefinition } from './experimentDefinition.ts';
import { allFinite } from './numberBounds.ts';

/**
 * What a definition makes of the guard's decisions: whether each check halts or only warns,
 * and the level each statistical test runs at, out of one family-wise false-halt budget.
 * Pure; read by the guard's checks, the admin API's live results and reanalysis.
 *
 * The budget (`falseHaltBudget`, default 0.05) bounds the chance that a harmless experiment is
 * ever halted by any halting check, however often the guard looks. Every halting test is
 * anytime-valid at its own level (the SRM Bayes factor and the one-sided guardrail confidence
 * sequences: each crosses with probability at most its level over all looks, by Ville's
 * inequality), so by Bonferroni (a union bound, valid for any dependence between the tests)
 * the family's chance of any false halt is at most the sum of the levels. The split:
 *
 * - SRM gets SRM_BUDGET_SHARE (a fifth) of the budget and the guardrails the rest, divided
 *   equally over every guardrail × treatment: α_g = (1 − 1/5)·budget / (guardrails × treatments).
 *   With 3 treatments and 10 guardrails at 0.05: SRM 0.01, each guardrail test 0.00133.
 * - When only one kind halts (the other warns, or there are no guardrails) it gets all of it.
 * - A check that only warns spends nothing: it runs at the level it would have if every
 *   statistical check halted (the same split), and its evidence says `spends: false`.
 * - Legacy levels: `srmThreshold` (SRM) and `guardrailAlpha` (each guardrail test), when a
 *   definition gives them, are used outside the budget, so a definition written before the
 *   budget keeps its false-halt rate. `guardrailAlpha` was the level of a two-sided confidence
 *   sequence, whose harmful side alone crosses with at most half of it: the one-sided test runs
 *   at guardrailAlpha / 2 (taking it whole would double the false halts of every definition
 *   stored with the old default 0.05). The family-wise bound is then the budget plus those
 *   levels (counted once per guardrail × treatment). Drop them to join the budget.
 */
export const DEFAULT_FALSE_HALT_BUDGET = 0.05;
export const SRM_BUDGET_SHARE = 0.2;
export const DEFAULT_NO_TRAFFIC_MINUTES = 60;

/** Today's behaviour: the statistical checks halt, the data-quality ones warn. */
export const DEFAULT_CHECK_ACTIONS: Readonly<Record<CheckSetting, CheckAction>> = Object.freeze({
  srm: 'halt',
  guardrails: 'halt',
  usersInTwoVariants: 'warn',
  rateCollapse: 'warn',
  noTraffic: 'warn',
});

export function checkActions(d: ExperimentDefinition): Record<CheckSetting, CheckAction> {
  return Object.fromEntries(CHECK_SETTINGS.map((k) => [k, d.checks?.[k] ?? DEFAULT_CHECK_ACTIONS[k]])) as Record<CheckSetting, CheckAction>;
}

/** The level one test runs at, and where it comes from (named in each decision's evidence). */
export interface TestLevel {
  alpha: number;
  /** 'budget': a share of falseHaltBudget; 'srmThreshold' / 'guardrailAlpha': the legacy field, outside it. */
  source: 'budget' | 'srmThreshold' | 'guardrailAlpha';
  /** False for a check that only warns: its level is not taken from the budget. */
  spends: boolean;
}

export interface DecisionLevels {
  budget: number;
  srm: TestLevel;
  /** Each guardrail × treatment test's level (all the same). */
  guardrail: TestLevel;
  guardrailTests: number;
}

export function decisionLevels(d: ExperimentDefinition): DecisionLevels {
  const budget = d.falseHaltBudget ?? DEFAULT_FALSE_HALT_BUDGET;
  const actions = checkActions(d);
  const guardrailTests = d.guardrailMetrics.length * (d.variants.length - 1);
  const srmSpends = actions.srm === 'halt';
  const guardrailsSpend = actions.guardrails === 'halt' && guardrailTests > 0;
  const srmFromBudget = d.srmThreshold === undefined;
  const guardrailsFromBudget = d.guardrailAlpha === undefined;
  // Who shares the budget: the halting tests without a legacy level.
  const srmInPool = srmSpends && srmFromBudget;
  const guardrailsInPool = guardrailsSpend && guardrailsFromBudget;
  const split = (srmShares: boolean, guardrailsShare: boolean) => {
    const srmPart = !srmShares ? 0 : guardrailsShare ? SRM_BUDGET_SHARE : 1;
    return { srm: srmPart * budget, guardrail: guardrailTests === 0 ? budget : ((1 - srmPart) * budget) / guardrailTests };
  };
  const spent = split(srmInPool, guardrailsInPool);
  // A warning-only test: the level it would have if every statistical check halted.
  const nominal = split(srmFromBudget, guardrailsFromBudget && guardrailTests > 0);
  const srm: TestLevel = !srmFromBudget ? { alpha: d.srmThreshold!, source: 'srmThreshold', spends: srmSpends } : { alpha: srmInPool ? spent.srm : nominal.srm, source: 'budget', spends: srmSpends };
  const guardrail: TestLevel = !guardrailsFromBudget
    ? { alpha: d.guardrailAlpha! / 2, source: 'guardrailAlpha', spends: guardrailsSpend }
    : { alpha: guardrailsInPool ? spent.guardrail : nominal.guardrail, source: 'budget', spends: guardrailsSpend };
  return { budget, srm, guardrail, guardrailTests };
}

/**
 * One guardrail of one treatment against the control, as the guard decides it: the
 * one-sided always-valid bound at the guardrail's share of the budget (lower when an increase
 * is harmful, upper when a decrease is) and the tolerance (absolute, or relative to the
 * control's mean). `harmed` when the bound lies beyond the tolerance. Undefined when the
 * difference cannot be estimated yet or a number is not finite (which decides nothing). The
 * guard's check and the results page's chart both take it from here, so the line drawn is the
 * line decided on.
 */
export interface GuardrailComparison {
  side: 'lower' | 'upper';
  bound: number;
  difference: number;
  controlMean: number;
  treatmentMean: number;
  tolerance: number;
  /** The mixture parameter the bound ran with (evidence). */
  rho: number;
  harmed: boolean;
}

export function compareGuardrail(definition: ExperimentDefinition, guardrail: GuardrailDefinition, control: VariantMetrics | undefined, treatment: VariantMetrics | undefined, alpha: number): GuardrailComparison | undefined {
  const side = guardrail.harmfulDirection === 'increase' ? 'lower' : 'upper';
  const cs = oneSidedDifferenceBound(toSummary(control, guardrail), toSummary(treatment, guardrail), { alpha, side, plannedUsersPerVariant: definition.plannedSampleSize });
  if (!cs.ok) return undefined;
  const tolerance = guardrail.tolerance.kind === 'absolute' ? guardrail.tolerance.value : guardrail.tolerance.value * Math.abs(cs.controlMean);
  if (!allFinite(cs.bound, cs.difference, cs.controlMean, cs.treatmentMean, tolerance)) return undefined;
  const harmed = side === 'lower' ? cs.bound > tolerance : cs.bound < -tolerance;
  return { side, bound: cs.bound, difference: cs.difference, controlMean: cs.controlMean, treatmentMean: cs.treatmentMean, tolerance, rho: cs.rho, harmed };
}
