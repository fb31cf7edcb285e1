import { allFinite } from '../../common/numberBounds.ts';
import { chiSquareGoodnessOfFit } from '../../stats/chiSquare.ts';
import { sequentialSrm } from '../../stats/sequentialSrm.ts';
import type { GuardCheck } from './guardCheck.ts';

/**
 * SAMPLE_RATIO_MISMATCH: the users per variant against the planned weights, by the sequential
 * Dirichlet-multinomial test at the definition's SRM threshold (chi-square reported beside
 * it). Critical, halts.
 */
export const sampleRatioMismatch: GuardCheck<'SAMPLE_RATIO_MISMATCH'> = {
  type: 'SAMPLE_RATIO_MISMATCH',
  waitsForMinimumSample: true,
  signals({ definition, users, base }) {
    const weights = definition.variants.map((v) => v.weight);
    const srm = sequentialSrm(users, weights, definition.srmThreshold);
    if (!srm.mismatch) return [];
    const chi = chiSquareGoodnessOfFit(users, weights);
    return [{
      incident: 'SRM',
      type: 'SAMPLE_RATIO_MISMATCH',
      severity: 'critical',
      halt: true,
      variantId: null,
      metric: null,
      reason: `sample ratio mismatch: users ${users.join(' / ')} against planned weights ${weights.join(' / ')} (Bayes factor ${srm.bayesFactor.toExponential(3)} ≥ ${1 / definition.srmThreshold})`,
      evidence: { ...base, test: 'dirichlet-multinomial sequential (Lindon & Malek 2022)', weights, logBayesFactor: srm.logBayesFactor, pValue: srm.pValue, threshold: definition.srmThreshold, chiSquare: chi.ok && allFinite(chi.statistic, chi.pValue) ? { statistic: chi.statistic, pValue: chi.pValue } : null },
    }];
  },
};
