import type { TotalsHolder } from '../common/experimentTotals.ts';
import { controlVariant, type PublishedDefinition } from '../common/experimentDefinition.ts';
import { compareGuardrail, decisionLevels } from '../common/guardPolicy.ts';
import { allFinite } from '../common/numberBounds.ts';
import { chiSquareGoodnessOfFit } from '../stats/chiSquare.ts';
import { sequentialSrm } from '../stats/sequentialSrm.ts';

/**
 * An experiment's results over time, for the results page's charts: after each aggregate
 * delta the API takes a point (at the delta's record time, one per second: a later delta in
 * the same second replaces the point) with the users per variant, the SRM evidence against
 * the planned split, and per guardrail and treatment the difference against control with its
 * one-sided always-valid bound and the tolerance, computed as the guard computes them (the
 * same services/stats functions, the same levels from services/common/guardPolicy.ts). The
 * history is rebuilt whenever the API reads exp.aggregates from its start, so it survives
 * restarts; at most `kept` points per experiment (the oldest go first). Pure.
 */
export interface GuardrailPoint {
  metric: string;
  variantId: string;
  difference: number;
  /** The harmful side's always-valid bound (lower when an increase is harmful, upper when a decrease is). */
  bound: number;
  side: 'lower' | 'upper';
  /** As a signed line: +tolerance when an increase is harmful, −tolerance when a decrease is. */
  toleranceLine: number;
}

export interface HistoryPoint {
  at: number;
  users: Record<string, number>;
  srm: { logBayesFactor: number; threshold: number; chiSquarePValue: number | null } | null;
  guardrails: GuardrailPoint[];
}

export const HISTORY_KEPT = 600;

export class ResultsHistory {
  private readonly points = new Map<string, HistoryPoint[]>();

  constructor(private readonly kept = HISTORY_KEPT) {}

  record(experimentId: string, at: number, published: PublishedDefinition | undefined, totals: TotalsHolder): void {
    const list = this.points.get(experimentId) ?? [];
    const last = list[list.length - 1];
    // Deltas come from several partitions whose record times interleave: time never goes back on a chart.
    const point = historyPoint(Math.max(at, last?.at ?? at), published, totals);
    if (last && Math.floor(last.at / 1000) === Math.floor(point.at / 1000)) list[list.length - 1] = point;
    else list.push(point);
    if (list.length > this.kept) list.splice(0, list.length - this.kept);
    this.points.set(experimentId, list);
  }

  of(experimentId: string): HistoryPoint[] {
    return this.points.get(experimentId) ?? [];
  }
}

export function historyPoint(at: number, published: PublishedDefinition | undefined, totals: TotalsHolder): HistoryPoint {
  const definition = published?.definition;
  const variantIds = definition ? definition.variants.map((v) => v.id) : Object.keys(totals.variants).sort();
  const users = Object.fromEntries(variantIds.map((id) => [id, totals.variants[id]?.users ?? 0]));
  if (!definition) return { at, users, srm: null, guardrails: [] };
  const levels = decisionLevels(definition);
  const counts = variantIds.map((id) => users[id]!);
  const weights = definition.variants.map((v) => v.weight);
  const srmResult = sequentialSrm(counts, weights, levels.srm.alpha);
  const chi = chiSquareGoodnessOfFit(counts, weights);
  const srm = allFinite(srmResult.logBayesFactor) ? { logBayesFactor: srmResult.logBayesFactor, threshold: Math.log(1 / levels.srm.alpha), chiSquarePValue: chi.ok && allFinite(chi.pValue) ? chi.pValue : null } : null;
  const control = controlVariant(definition);
  const guardrails: GuardrailPoint[] = [];
  for (const guardrail of definition.guardrailMetrics) {
    for (const variantId of variantIds.filter((v) => v !== control)) {
      const cs = compareGuardrail(definition, guardrail, totals.variants[control], totals.variants[variantId], levels.guardrail.alpha);
      if (!cs) continue;
      guardrails.push({ metric: guardrail.name, variantId, difference: cs.difference, bound: cs.bound, side: cs.side, toleranceLine: cs.side === 'lower' ? cs.tolerance : -cs.tolerance });
    }
  }
  return { at, users, srm, guardrails };
}
