import { controlVariant } from '../../common/experimentDefinition.ts';
import { compareGuardrail, decisionLevels } from '../../common/guardPolicy.ts';
import type { GuardCheck, Signal } from './guardCheck.ts';

/**
 * GUARDRAIL_REGRESSION, per guardrail metric and treatment: the one-sided always-valid bound
 * of treatment − control on the harmful side (the lower bound when an increase is harmful,
 * the upper when a decrease is) lies beyond the tolerance (absolute, or relative to the
 * control mean). Each test runs at its share of the false-halt budget (or a legacy
 * `guardrailAlpha`; services/common/guardPolicy.ts), its mixture tuned to the planned sample
 * size (services/stats/confidenceSequence.ts). Halts by default (`checks.guardrails`). A
 * bound, mean or tolerance that is not finite decides nothing, like a zero variance.
 * A ratio guardrail (errors per request, say) is tested the same way on the difference of the
 * ratios Σx/Σy, with the delta-method variance (services/stats/ratioOfMeans.ts) in place of the
 * sample variance; a capped one on the means of the capped user values.
 */
export const guardrailRegression: GuardCheck<'GUARDRAIL_REGRESSION'> = {
  type: 'GUARDRAIL_REGRESSION',
  waitsForMinimumSample: true,
  setting: 'guardrails',
  signals({ state, definition, variants, base }) {
    const signals: Signal<'GUARDRAIL_REGRESSION'>[] = [];
    const control = controlVariant(definition);
    const levels = decisionLevels(definition);
    const { alpha } = levels.guardrail;
    for (const guardrail of definition.guardrailMetrics) {
      for (const variant of variants.filter((v) => v !== control)) {
        const cs = compareGuardrail(definition, guardrail, state.variants[control], state.variants[variant], alpha);
        if (!cs?.harmed) continue;
        const { side, tolerance } = cs;
        signals.push({
          incident: `GUARDRAIL:${guardrail.name}:${variant}`,
          type: 'GUARDRAIL_REGRESSION',
          severity: 'critical',
          halt: true,
          variantId: variant,
          metric: guardrail.name,
          reason: `guardrail ${guardrail.name} regressed in ${variant}: difference ${cs.difference.toPrecision(4)} with always-valid ${side} bound ${cs.bound.toPrecision(4)} beyond the tolerance ${tolerance.toPrecision(4)} (${guardrail.harmfulDirection} is harmful; one-sided at alpha ${alpha.toPrecision(3)})`,
          evidence: {
            ...base,
            test: 'one-sided normal-mixture confidence sequence (Johari et al. 2017; Howard et al. 2021), mixture tuned to the planned sample size',
            control,
            controlMean: cs.controlMean,
            treatmentMean: cs.treatmentMean,
            difference: cs.difference,
            [side]: cs.bound,
            side,
            bound: cs.bound,
            tolerance,
            harmfulDirection: guardrail.harmfulDirection,
            alpha,
            level: { source: levels.guardrail.source, spends: levels.guardrail.spends, falseHaltBudget: levels.budget, tests: levels.guardrailTests },
            mixtureRho: cs.rho,
            plannedSampleSize: definition.plannedSampleSize,
          },
        });
      }
    }
    return signals;
  },
};
