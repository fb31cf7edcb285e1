import { describe, expect, it } from 'vitest';
import { parseDefinition, type PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import type { TotalsHolder } from '../../services/common/experimentTotals.ts';
import { ResultsHistory, historyPoint } from '../../services/control/resultsHistory.ts';
import { checkInput } from '../../services/guard/checks/guardCheck.ts';
import { guardrailRegression } from '../../services/guard/checks/guardrailRegression.ts';
import { sampleRatioMismatch } from '../../services/guard/checks/sampleRatioMismatch.ts';
import { emptyExperimentState } from '../../services/guard/experimentState.ts';

// The page's charts must show what the guard decided on: the history's points are checked
// against the guard's own checks' evidence for the same totals.
const published: PublishedDefinition = {
  experimentId: 'e', version: 3, appliedAt: 0,
  definition: parseDefinition({
    id: 'e', name: 'e', hypothesis: 'h', owner: 'o', variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
    primaryMetrics: [{ name: 'orders', type: 'conversion' }],
    guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.05 } }],
    minimumSampleSize: 100, plannedSampleSize: 2_000,
  }, 'test'),
};

/** n users with latency mean m and sample sd s: Σx = n·m, Σx² = (n − 1)s² + n·m². */
function totals(control: [number, number, number], treatment: [number, number, number]): TotalsHolder {
  const variant = ([n, m, s]: [number, number, number]) => ({ users: n, conflicts: 0, exposuresByMinute: {}, metrics: { latency: { sum: n * m, sumSquares: (n - 1) * s * s + n * m * m, conversions: 0, events: n, sumY: 0, sumSquaresY: 0, sumXY: 0 } } });
  return { variants: { control: variant(control), treatment: variant(treatment) } };
}

describe('results history', () => {
  it('shows the guardrail bound and tolerance, and the SRM evidence, that the guard decides with', () => {
    const t = totals([900, 200, 40], [700, 260, 40]);
    const point = historyPoint(1_000, published, t);
    const state = { ...emptyExperimentState('e'), variants: t.variants };
    const [guardrail] = guardrailRegression.signals(checkInput(state, published));
    const [srm] = sampleRatioMismatch.signals(checkInput(state, published));
    expect(guardrail).toBeDefined();
    expect(point.guardrails).toEqual([{ metric: 'latency', variantId: 'treatment', difference: guardrail!.evidence.difference, bound: guardrail!.evidence.bound, side: 'lower', toleranceLine: guardrail!.evidence.tolerance }]);
    expect(point.guardrails[0]!.bound).toBeGreaterThan(point.guardrails[0]!.toleranceLine);
    expect(srm).toBeDefined();
    expect(point.srm!.logBayesFactor).toBe(srm!.evidence.logBayesFactor);
    expect(point.srm!.logBayesFactor).toBeGreaterThanOrEqual(point.srm!.threshold);
    expect(point.users).toEqual({ control: 900, treatment: 700 });
  });

  it('keeps one point per second, never goes back in time, and keeps the newest points only', () => {
    const history = new ResultsHistory(3);
    const t = totals([10, 1, 1], [10, 1, 1]);
    history.record('e', 1_000, published, t);
    history.record('e', 1_500, published, totals([11, 1, 1], [10, 1, 1]));
    expect(history.of('e').map((p) => [p.at, p.users.control])).toEqual([[1_500, 11]]);
    // A delta from another partition with an earlier record time lands on the latest point.
    history.record('e', 900, published, totals([12, 1, 1], [10, 1, 1]));
    expect(history.of('e').map((p) => [p.at, p.users.control])).toEqual([[1_500, 12]]);
    for (const at of [2_000, 3_000, 4_000]) history.record('e', at, published, t);
    expect(history.of('e').map((p) => p.at)).toEqual([2_000, 3_000, 4_000]);
    expect(history.of('other')).toEqual([]);
  });

  it('has users but no statistics without a definition', () => {
    expect(historyPoint(5, undefined, totals([3, 1, 1], [4, 1, 1]))).toEqual({ at: 5, users: { control: 3, treatment: 4 }, srm: null, guardrails: [] });
  });
});
