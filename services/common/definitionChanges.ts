import { isDeepStrictEqual } from 'node:util';
import { controlVariant, metricOfGuardrail, type ExperimentDefinition } from './experimentDefinition.ts';

/**
 * What a new version of a definition changes, field by field, and whether each change would
 * invalidate the statistics of an experiment that is already running (the control service
 * refuses those; a draft may change freely):
 *
 * - invalidating: the variants (ids, weights, order), the control variant, any metric's name,
 *   type, cap or ratio numerator and denominator (they decide each user's value), a guardrail's
 *   harmful direction, the attribution window (it decides which events
 *   count), the experiment id. Users already enrolled were split, and their events counted,
 *   under the old rules: a change would mix two experiments in one set of sums.
 * - allowed: thresholds and gates the decisions read (falseHaltBudget, the legacy
 *   srmThreshold and guardrailAlpha, a guardrail's tolerance, minimumSampleSize, what each
 *   check does (`checks`: halt or warn), noTrafficMinutes), the plan (plannedSampleSize: the
 *   tests stay anytime-valid; it only tunes where the guardrail sequences are tightest), and
 *   the words (name, hypothesis, owner). The version goes up and the change is audited.
 *
 * A field this module does not know is treated as invalidating: a new field must be
 * classified here before a running experiment may change it.
 */
export interface DefinitionChange {
  field: string;
  invalidates: boolean;
}

const ALLOWED = new Set(['name', 'hypothesis', 'owner', 'falseHaltBudget', 'srmThreshold', 'guardrailAlpha', 'checks', 'noTrafficMinutes', 'minimumSampleSize', 'plannedSampleSize']);
const COMPARED_ABOVE = new Set(['variants', 'control', 'primaryMetrics', 'guardrailMetrics']);

export function definitionChanges(before: ExperimentDefinition, after: ExperimentDefinition): DefinitionChange[] {
  const changes: DefinitionChange[] = [];
  const changed = (field: string, invalidates: boolean) => changes.push({ field, invalidates });
  const a = before as unknown as Record<string, unknown>;
  const b = after as unknown as Record<string, unknown>;

  if (!isDeepStrictEqual(before.variants, after.variants)) changed('variants', true);
  if (controlVariant(before) !== controlVariant(after)) changed('control', true);
  if (!isDeepStrictEqual(before.primaryMetrics, after.primaryMetrics)) changed('primaryMetrics', true);

  const guardrails = (d: ExperimentDefinition) => new Map(d.guardrailMetrics.map((g) => [g.name, g]));
  const [old, next] = [guardrails(before), guardrails(after)];
  if (!isDeepStrictEqual([...old.keys()], [...next.keys()])) changed('guardrailMetrics', true);
  else {
    for (const [name, g] of old) {
      const h = next.get(name)!;
      if (g.type !== h.type) changed(`guardrailMetrics.${name}.type`, true);
      else if (!isDeepStrictEqual(metricOfGuardrail(g), metricOfGuardrail(h))) changed(`guardrailMetrics.${name}.metric`, true);
      if (g.harmfulDirection !== h.harmfulDirection) changed(`guardrailMetrics.${name}.harmfulDirection`, true);
      if (!isDeepStrictEqual(g.tolerance, h.tolerance)) changed(`guardrailMetrics.${name}.tolerance`, false);
    }
  }
  for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (COMPARED_ABOVE.has(key) || isDeepStrictEqual(a[key], b[key])) continue;
    changed(key, !ALLOWED.has(key));
  }
  return changes;
}
