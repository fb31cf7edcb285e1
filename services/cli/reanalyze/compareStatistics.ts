import { allMetrics, controlVariant, type ExperimentDefinition } from '../../common/experimentDefinition.ts';
import { decisionLevels } from '../../common/guardPolicy.ts';
import { chiSquareGoodnessOfFit } from '../../stats/chiSquare.ts';
import { differenceConfidenceSequence } from '../../stats/confidenceSequence.ts';
import { STATISTIC_FIELDS, toSummary, type StatisticField } from '../../stats/metricStatistics.ts';
import { sequentialSrm } from '../../stats/sequentialSrm.ts';
import { welchTest } from '../../stats/welch.ts';
import type { ExperimentStatistics } from './reanalysisQueries.ts';

/**
 * Streamed and recomputed statistics side by side, and the guard's tests run on each with
 * services/stats, as rows of a comparison table. A row mismatches when the two differ by
 * more than `tolerance` relative to the larger (counts must be equal).
 */
export interface ComparisonRow {
  quantity: string;
  streamed: number;
  recomputed: number;
  relativeDifference: number;
  mismatch: boolean;
}

const FIELD_LABELS: Record<StatisticField, string> = { sum: 'Σx', sumSquares: 'Σx²', conversions: 'conversions', events: 'events', sumY: 'Σy', sumSquaresY: 'Σy²', sumXY: 'Σxy' };

/** Σy, Σy², Σxy: compared for ratio metrics only (always 0 for the others). */
const RATIO_ONLY = new Set<StatisticField>(['sumY', 'sumSquaresY', 'sumXY']);

export function compareStatistics(definition: ExperimentDefinition, streamed: ExperimentStatistics, recomputed: ExperimentStatistics, tolerance = 1e-9): ComparisonRow[] {
  const rows: ComparisonRow[] = [];
  const add = (quantity: string, a: number, b: number) => {
    const scale = Math.max(Math.abs(a), Math.abs(b));
    const relativeDifference = a === b || (Number.isNaN(a) && Number.isNaN(b)) ? 0 : scale === 0 ? 0 : Math.abs(a - b) / scale;
    rows.push({ quantity, streamed: a, recomputed: b, relativeDifference, mismatch: !(relativeDifference <= tolerance) });
  };
  const variants = definition.variants.map((v) => v.id);
  for (const v of variants) {
    add(`${v} users`, streamed[v]!.users, recomputed[v]!.users);
    add(`${v} conflicts`, streamed[v]!.conflicts, recomputed[v]!.conflicts);
    for (const m of allMetrics(definition)) {
      const s = streamed[v]!.metrics[m.name]!;
      const r = recomputed[v]!.metrics[m.name]!;
      for (const f of STATISTIC_FIELDS) if (m.type === 'ratio' || !RATIO_ONLY.has(f)) add(`${v} ${m.name} ${FIELD_LABELS[f]}`, s[f], r[f]);
    }
  }
  const weights = definition.variants.map((v) => v.weight);
  const levels = decisionLevels(definition);
  const counts = (stats: ExperimentStatistics) => variants.map((v) => stats[v]!.users);
  add('SRM log Bayes factor', sequentialSrm(counts(streamed), weights, levels.srm.alpha).logBayesFactor, sequentialSrm(counts(recomputed), weights, levels.srm.alpha).logBayesFactor);
  const chi = (stats: ExperimentStatistics) => {
    const r = chiSquareGoodnessOfFit(counts(stats), weights);
    return r.ok ? r.pValue : Number.NaN;
  };
  add('SRM chi-square p-value', chi(streamed), chi(recomputed));
  const control = controlVariant(definition);
  for (const m of allMetrics(definition)) {
    for (const v of variants.filter((x) => x !== control)) {
      const summary = (stats: ExperimentStatistics, variant: string) => toSummary(stats[variant], m);
      const cs = (stats: ExperimentStatistics) => differenceConfidenceSequence(summary(stats, control), summary(stats, v), levels.guardrail.alpha, { plannedUsersPerVariant: definition.plannedSampleSize });
      const welch = (stats: ExperimentStatistics) => welchTest(summary(stats, control), summary(stats, v));
      const [cs1, cs2, w1, w2] = [cs(streamed), cs(recomputed), welch(streamed), welch(recomputed)];
      if (cs1.ok && cs2.ok) {
        add(`${v}−${control} ${m.name} difference`, cs1.difference, cs2.difference);
        add(`${v}−${control} ${m.name} sequence lower`, cs1.lower, cs2.lower);
        add(`${v}−${control} ${m.name} sequence upper`, cs1.upper, cs2.upper);
      }
      if (w1.ok && w2.ok) add(`${v}−${control} ${m.name} Welch p-value`, w1.pValue, w2.pValue);
    }
  }
  return rows;
}
