import { decisionLevels } from '../../common/guardPolicy.ts';
import { allFinite } from '../../common/numberBounds.ts';
import { chiSquareGoodnessOfFit } from '../../stats/chiSquare.ts';
import { sequentialSrm } from '../../stats/sequentialSrm.ts';
import type { GuardCheck } from './guardCheck.ts';

/**
 * SAMPLE_RATIO_MISMATCH: the users per variant against the planned weights, by the sequential
 * Dirichlet-multinomial test at SRM's share of the false-halt budget (or a legacy
 * `srmThreshold`; services/common/guardPolicy.ts), chi-square reported beside it. Gated on the
 * total users, never on the smallest variant: an empty variant is the worst mismatch (the
 * Bayes factor takes zero counts as they are). Halts by default (`checks.srm`).
 */
export const sampleRatioMismatch: GuardCheck<'SAMPLE_RATIO_MISMATCH'> = {
  type: 'SAMPLE_RATIO_MISMATCH',
  waitsForMinimumSample: true,
  minimumSampleOf: 'total',
  setting: 'srm',
  signals({ definition, users, base }) {
    const weights = definition.variants.map((v) => v.weight);
    const levels = decisionLevels(definition);
    const { alpha } = levels.srm;
    const srm = sequentialSrm(users, weights, alpha);
    if (!srm.mismatch) return [];
    const chi = chiSquareGoodnessOfFit(users, weights);
    return [{
      incident: 'SRM',
      type: 'SAMPLE_RATIO_MISMATCH',
      severity: 'critical',
      halt: true,
      variantId: null,
      metric: null,
      reason: `sample ratio mismatch: users ${users.join(' / ')} against planned weights ${weights.join(' / ')} (Bayes factor ${srm.bayesFactor.toExponential(3)} ≥ ${(1 / alpha).toPrecision(4)}, alpha ${alpha.toPrecision(3)})`,
      evidence: {
        ...base,
        test: 'dirichlet-multinomial sequential (Lindon & Malek 2022)',
        weights,
        logBayesFactor: srm.logBayesFactor,
        pValue: srm.pValue,
        threshold: alpha,
        alpha,
        level: { source: levels.srm.source, spends: levels.srm.spends, falseHaltBudget: levels.budget },
        chiSquare: chi.ok && allFinite(chi.statistic, chi.pValue) ? { statistic: chi.statistic, pValue: chi.pValue } : null,
      },
    }];
  },
};
