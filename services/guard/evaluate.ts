import { controlVariant, type PublishedDefinition } from '../common/experimentDefinition.ts';
import { allFinite, nonFinitePaths } from '../common/numberBounds.ts';
import { chiSquareGoodnessOfFit } from '../stats/chiSquare.ts';
import { differenceConfidenceSequence } from '../stats/confidenceSequence.ts';
import { sequentialSrm } from '../stats/sequentialSrm.ts';
import type { ExperimentState } from './experimentState.ts';

/**
 * The guard's decisions for one experiment, from its current totals. Returns the signals
 * whose incident has not been raised yet. Policy:
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
export interface Signal {
  incident: string;
  type: 'SAMPLE_RATIO_MISMATCH' | 'GUARDRAIL_REGRESSION' | 'USERS_IN_TWO_VARIANTS' | 'VARIANT_RATE_COLLAPSE';
  severity: 'critical' | 'warning';
  halt: boolean;
  variantId: string | null;
  metric: string | null;
  reason: string;
  evidence: Record<string, unknown>;
}

export type WithheldSignal = (signal: Signal, nonFinite: string[]) => void;

export function evaluateExperiment(state: ExperimentState, published: PublishedDefinition, withheld: WithheldSignal = () => {}): Signal[] {
  const { definition, version } = published;
  const variants = definition.variants.map((v) => v.id);
  const users = variants.map((v) => state.variants[v]?.users ?? 0);
  const signals: Signal[] = [];
  const fresh = (s: Signal) => {
    if (state.incidents[s.incident]) return;
    const nonFinite = nonFinitePaths(s.evidence, 'evidence');
    if (nonFinite.length > 0) withheld(s, nonFinite);
    else signals.push(s);
  };
  const base = { definitionVersion: version, users: Object.fromEntries(variants.map((v, i) => [v, users[i]])) };

  if (Math.min(...users) >= definition.minimumSampleSize) {
    const weights = definition.variants.map((v) => v.weight);
    const srm = sequentialSrm(users, weights, definition.srmThreshold);
    if (srm.mismatch) {
      const chi = chiSquareGoodnessOfFit(users, weights);
      fresh({
        incident: 'SRM',
        type: 'SAMPLE_RATIO_MISMATCH',
        severity: 'critical',
        halt: true,
        variantId: null,
        metric: null,
        reason: `sample ratio mismatch: users ${users.join(' / ')} against planned weights ${weights.join(' / ')} (Bayes factor ${srm.bayesFactor.toExponential(3)} ≥ ${1 / definition.srmThreshold})`,
        evidence: { ...base, test: 'dirichlet-multinomial sequential (Lindon & Malek 2022)', weights, logBayesFactor: srm.logBayesFactor, pValue: srm.pValue, threshold: definition.srmThreshold, chiSquare: chi.ok && allFinite(chi.statistic, chi.pValue) ? { statistic: chi.statistic, pValue: chi.pValue } : null },
      });
    }
    const control = controlVariant(definition);
    for (const guardrail of definition.guardrailMetrics) {
      for (const variant of variants.filter((v) => v !== control)) {
        const summary = (v: string) => {
          const t = state.variants[v]?.metrics[guardrail.name];
          return { users: state.variants[v]?.users ?? 0, sum: t?.sum ?? 0, sumSquares: t?.sumSquares ?? 0 };
        };
        const cs = differenceConfidenceSequence(summary(control), summary(variant), definition.guardrailAlpha);
        if (!cs.ok) continue;
        const tolerance = guardrail.tolerance.kind === 'absolute' ? guardrail.tolerance.value : guardrail.tolerance.value * Math.abs(cs.controlMean);
        if (!allFinite(cs.lower, cs.upper, cs.difference, cs.controlMean, cs.treatmentMean, tolerance)) continue;
        const harmed = guardrail.harmfulDirection === 'increase' ? cs.lower > tolerance : cs.upper < -tolerance;
        if (!harmed) continue;
        fresh({
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
  }

  const totalUsers = users.reduce((a, b) => a + b, 0);
  const conflicts = variants.reduce((n, v) => n + (state.variants[v]?.conflicts ?? 0), 0);
  if (conflicts >= 20 && conflicts > 0.01 * totalUsers) {
    fresh({ incident: 'CONFLICTS', type: 'USERS_IN_TWO_VARIANTS', severity: 'warning', halt: false, variantId: null, metric: null, reason: `${conflicts} of ${totalUsers} users were exposed to more than one variant`, evidence: { ...base, conflicts, share: conflicts / totalUsers, threshold: 0.01 } });
  }

  const minutes = [...new Set(variants.flatMap((v) => Object.keys(state.variants[v]?.exposuresByMinute ?? {}).map(Number)))].sort((a, b) => a - b);
  const lastComplete = minutes.at(-2);
  if (lastComplete !== undefined) {
    const counts = variants.map((v) => state.variants[v]?.exposuresByMinute[String(lastComplete)] ?? 0);
    const total = counts.reduce((a, b) => a + b, 0);
    definition.variants.forEach((v, i) => {
      const expected = v.weight * total;
      if (total >= 50 && counts[i]! < 0.1 * expected) {
        fresh({ incident: `RATE_COLLAPSE:${v.id}:${lastComplete}`, type: 'VARIANT_RATE_COLLAPSE', severity: 'warning', halt: false, variantId: v.id, metric: null, reason: `variant ${v.id} had ${counts[i]} exposures in the minute from ${new Date(lastComplete).toISOString()}, expected about ${Math.round(expected)}`, evidence: { ...base, minute: lastComplete, exposures: counts[i], expected, minuteTotal: total } });
      }
    });
  }
  return signals;
}
