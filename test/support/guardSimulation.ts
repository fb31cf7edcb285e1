import type { PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import { gaussian, seededRandom } from '../../services/common/random.ts';
import type { ExperimentState } from '../../services/guard/experimentState.ts';

/**
 * Seeded simulations of whole experiments through the guard's own decision code: users
 * arrive one at a time, are assigned by an actual split (which may differ from the plan),
 * carry a normal value per guardrail metric (treatments may shift it), and the guard looks
 * after every `lookEvery` users, as it does after every batch. Each run stops at the first
 * HALTING signal (or at `maxUsers`) and reports at how many users. The evaluation function is
 * passed in, so the same simulation measures the current guard and, for before/after
 * figures, an older copy of it (test/support/measureGuardDecisions.ts).
 */
export type Evaluate = (state: ExperimentState, published: PublishedDefinition) => { type: string; halt: boolean }[];

export interface SimulatedDesign {
  published: PublishedDefinition;
  /** The actual assignment probabilities, in definition order (the plan is in the definition). */
  actualSplit: number[];
  /** Per variant (definition order), the shift of every guardrail's mean, in standard deviations. */
  shiftSd?: number[];
  metricMean?: number;
  metricSd?: number;
  lookEvery: number;
  maxUsers: number;
}

export interface RunOutcome {
  /** Users in all at the first halting signal; null when none halted. */
  haltedAt: number | null;
  type: string | null;
}

export function simulateRun(design: SimulatedDesign, evaluate: Evaluate, seed: number): RunOutcome {
  const random = seededRandom(seed);
  const { definition } = design.published;
  const variants = definition.variants.map((v) => v.id);
  const metrics = definition.guardrailMetrics.map((g) => g.name);
  const mean = design.metricMean ?? 100;
  const sd = design.metricSd ?? 20;
  const state: ExperimentState = { experimentId: definition.id, variants: {}, incidents: {} };
  for (const v of variants) state.variants[v] = { users: 0, conflicts: 0, metrics: Object.fromEntries(metrics.map((m) => [m, { sum: 0, sumSquares: 0, conversions: 0, events: 0, sumY: 0, sumSquaresY: 0, sumXY: 0 }])), exposuresByMinute: {} };
  const cumulative = design.actualSplit.map((_, i) => design.actualSplit.slice(0, i + 1).reduce((a, b) => a + b, 0));
  for (let user = 1; user <= design.maxUsers; user++) {
    const u = random();
    let arm = cumulative.findIndex((c) => u < c);
    if (arm < 0) arm = variants.length - 1;
    const totals = state.variants[variants[arm]!]!;
    totals.users += 1;
    const shift = (design.shiftSd?.[arm] ?? 0) * sd;
    for (const m of metrics) {
      const x = mean + shift + sd * gaussian(random);
      const s = totals.metrics[m]!;
      s.sum += x;
      s.sumSquares += x * x;
      s.events += 1;
    }
    if (user % design.lookEvery !== 0) continue;
    const halting = evaluate(state, design.published).find((signal) => signal.halt);
    if (halting) return { haltedAt: user, type: halting.type };
  }
  return { haltedAt: null, type: null };
}

export function simulateRuns(design: SimulatedDesign, evaluate: Evaluate, runs: number, firstSeed: number): RunOutcome[] {
  return Array.from({ length: runs }, (_, i) => simulateRun(design, evaluate, firstSeed + i));
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The largest number of halts out of `runs` that is still consistent with a true rate of at
 * most `rate`: the smallest k with P(Binomial(runs, rate) ≥ k) ≤ `tail`, minus one (exact
 * binomial tail). A measured count above it refutes "rate ≤ budget" at that tail probability.
 */
export function binomialUpperLimit(runs: number, rate: number, tail: number): number {
  let pmf = (1 - rate) ** runs; // P(X = 0)
  let cdf = pmf;
  for (let k = 0; k < runs; k++) {
    if (1 - cdf <= tail) return k;
    pmf *= ((runs - k) / (k + 1)) * (rate / (1 - rate));
    cdf += pmf;
  }
  return runs;
}

/** The definitions the simulations use, as plain objects (parsed by whichever schema is measured). */
export function wideDesignDefinition(treatments: number, guardrails: number, plannedSampleSize: number): Record<string, unknown> {
  const arms = treatments + 1;
  return {
    id: 'wide', name: 'wide', hypothesis: 'A/A', owner: 'simulation',
    variants: Array.from({ length: arms }, (_, i) => ({ id: i === 0 ? 'control' : `t${i}`, weight: 1 / arms })),
    primaryMetrics: [{ name: 'revenue', type: 'sum' }],
    guardrailMetrics: Array.from({ length: guardrails }, (_, i) => ({ name: `g${i}`, type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'absolute', value: 0 } })),
    plannedSampleSize,
  };
}
