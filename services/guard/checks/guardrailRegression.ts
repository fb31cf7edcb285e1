import { controlVariant } from '../../common/experimentDefinition.ts';
import { allFinite } from '../../common/numberBounds.ts';
import { differenceConfidenceSequence } from '../../stats/confidenceSequence.ts';
import { toSummary } from '../../stats/metricStatistics.ts';
import type { GuardCheck, Signal } from './guardCheck.ts';

/**
 * GUARDRAIL_REGRESSION, per guardrail metric and treatment: the always-valid confidence
 * sequence of treatment − control excludes the tolerance (absolute, or relative to the
 * control mean) on the harmful side. Critical, halts. A bound, mean or tolerance that is not
 * finite decides nothing, like a zero variance.
 */
export const guardrailRegression: GuardCheck<'GUARDRAIL_REGRESSION'> = {
  type: 'GUARDRAIL_REGRESSION',
  waitsForMinimumSample: true,
  signals({ state, definition, variants, base }) {
    const signals: Signal<'GUARDRAIL_REGRESSION'>[] = [];
    const control = controlVariant(definition);
    for (const guardrail of definition.guardrailMetrics) {
      for (const variant of variants.filter((v) => v !== control)) {
        const cs = differenceConfidenceSequence(toSummary(state.variants[control], guardrail.name), toSummary(state.variants[variant], guardrail.name), definition.guardrailAlpha);
        if (!cs.ok) continue;
        const tolerance = guardrail.tolerance.kind === 'absolute' ? guardrail.tolerance.value : guardrail.tolerance.value * Math.abs(cs.controlMean);
        if (!allFinite(cs.lower, cs.upper, cs.difference, cs.controlMean, cs.treatmentMean, tolerance)) continue;
        const harmed = guardrail.harmfulDirection === 'increase' ? cs.lower > tolerance : cs.upper < -tolerance;
        if (!harmed) continue;
        signals.push({
          incident: `GUARDRAIL:${guardrail.name}:${variant}`,
          type: 'GUARDRAIL_REGRESSION',
          severity: 'critical',
          halt: true,
          variantId: variant,
          metric: guardrail.name,
          reason: `guardrail ${guardrail.name} regressed in ${variant}: difference ${cs.difference.toPrecision(4)} with always-valid interval [${cs.lower.toPrecision(4)}, ${cs.upper.toPrecision(4)}] beyond the tolerance ${tolerance.toPrecision(4)} (${guardrail.harmfulDirection} is harmful)`,
          evidence: { ...base, test: 'normal-mixture confidence sequence (Johari et al. 2017; Howard et al. 2021)', control, controlMean: cs.controlMean, treatmentMean: cs.treatmentMean, difference: cs.difference, lower: cs.lower, upper: cs.upper, tolerance, harmfulDirection: guardrail.harmfulDirection, alpha: definition.guardrailAlpha },
        });
      }
    }
    return signals;
  },
};
