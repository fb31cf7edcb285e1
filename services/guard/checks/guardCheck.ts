import type { CheckSetting, ExperimentDefinition, PublishedDefinition } from '../../common/experimentDefinition.ts';
import type { ExperimentState } from '../experimentState.ts';

/**
 * What every guard check is: one decision over an experiment's current totals, returning the
 * signals it would raise now, in the order to raise them. A check does not filter incidents
 * already raised or evidence that is not finite: evaluateExperiment (../evaluate.ts) does that
 * for all of them alike. Checks are registered, in order, in ./index.ts.
 */
export interface Signal<Type extends string = string> {
  /** Stable per incident (e.g. `GUARDRAIL:latency:treatment`): an incident is raised, and halted, once. */
  incident: string;
  type: Type;
  severity: 'critical' | 'warning';
  halt: boolean;
  variantId: string | null;
  metric: string | null;
  reason: string;
  evidence: Record<string, unknown>;
}

/** An experiment as the checks see it: its totals and definition, variants in definition order with their users. */
export interface CheckInput {
  state: ExperimentState;
  definition: ExperimentDefinition;
  variants: string[];
  /** Users per variant, in the order of `variants`. */
  users: number[];
  /** Evidence every signal starts from: the definition version decided with and the users per variant. */
  base: { definitionVersion: number; users: Record<string, number> };
  /** Wall-clock time of this evaluation (ms since the epoch), for checks on time passing (NO_TRAFFIC); absent: such checks stay quiet. */
  now?: number;
}

export interface GuardCheck<Type extends string = string> {
  /** The signal type it raises (the `type` of exp.anomalies records). */
  type: Type;
  /** True for statistical decisions, which wait for the definition's minimum sample size; false for data-quality signals. */
  waitsForMinimumSample: boolean;
  /**
   * Whose users the minimum sample size counts: 'everyVariant' (the default: the smallest
   * variant must have it) or 'total' (all variants together: SRM, where a variant without
   * users is the mismatch itself, not a reason to wait).
   */
  minimumSampleOf?: 'everyVariant' | 'total';
  /**
   * The definition's `checks` entry that says whether its signals halt or only warn
   * (services/common/guardPolicy.ts); evaluateExperiment applies it. Without one, the
   * check's own `halt` and `severity` stand.
   */
  setting?: CheckSetting;
  signals(input: CheckInput): Signal<Type>[];
}

export function checkInput(state: ExperimentState, published: PublishedDefinition, now?: number): CheckInput {
  const { definition, version } = published;
  const variants = definition.variants.map((v) => v.id);
  const users = variants.map((v) => state.variants[v]?.users ?? 0);
  return { state, definition, variants, users, base: { definitionVersion: version, users: Object.fromEntries(variants.map((v, i) => [v, users[i]!])) }, ...(now === undefined ? {} : { now }) };
}
