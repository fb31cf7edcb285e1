import type { ExperimentDefinition, PublishedDefinition } from '../../common/experimentDefinition.ts';
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
}

export interface GuardCheck<Type extends string = string> {
  /** The signal type it raises (the `type` of exp.anomalies records). */
  type: Type;
  /** True for statistical decisions, which wait until every variant has the definition's minimum sample size; false for data-quality signals. */
  waitsForMinimumSample: boolean;
  signals(input: CheckInput): Signal<Type>[];
}

export function checkInput(state: ExperimentState, published: PublishedDefinition): CheckInput {
  const { definition, version } = published;
  const variants = definition.variants.map((v) => v.id);
  const users = variants.map((v) => state.variants[v]?.users ?? 0);
  return { state, definition, variants, users, base: { definitionVersion: version, users: Object.fromEntries(variants.map((v, i) => [v, users[i]!])) } };
}
