import { describe, expect, it } from 'vitest';
import { parseDefinition, type PublishedDefinition } from '../../services/common/experimentDefinition.ts';
import { evaluateExperiment } from '../../services/guard/evaluate.ts';
import { binomialUpperLimit, median, simulateRuns, wideDesignDefinition } from '../support/guardSimulation.ts';

/**
 * Halts you can trust, measured through the guard's real decision code (evaluateExperiment,
 * every registered check, the default false-halt budget), in seeded simulations bounded to a
 * few seconds each. test/support/measureGuardDecisions.ts prints the same figures (and, given
 * an older checkout, the figures before).
 */
const evaluate = (state: Parameters<typeof evaluateExperiment>[0], published: PublishedDefinition) => evaluateExperiment(state, published);
const publish = (definition: Record<string, unknown>): PublishedDefinition => ({ experimentId: String(definition.id), version: 1, appliedAt: 0, definition: parseDefinition(definition, 'simulation') });

describe('family-wise false halts: 3 treatments × 10 guardrails, zero tolerance, A/A', () => {
  // 31 halting tests (SRM and 30 guardrail × treatment) share the default budget of 0.05.
  const RUNS = 200;
  const BUDGET = 0.05;

  it(`halts at most the budget's share of ${RUNS} A/A runs, looking every 100 users up to 4,000`, () => {
    const published = publish(wideDesignDefinition(3, 10, 1_000));
    const outcomes = simulateRuns({ published, actualSplit: [0.25, 0.25, 0.25, 0.25], lookEvery: 100, maxUsers: 4_000 }, evaluate, RUNS, 1_000);
    const halts = outcomes.filter((o) => o.haltedAt !== null).length;
    // The exact binomial bound: with a true rate of 0.05, more than `limit` halts in 200 runs
    // has probability ≤ 0.001. (The guarantee is ≤ 0.05; Bonferroni makes the real rate lower.)
    const limit = binomialUpperLimit(RUNS, BUDGET, 0.001);
    console.info(`A/A wide design: ${halts} of ${RUNS} runs halted (${((100 * halts) / RUNS).toFixed(1)} %; budget ${BUDGET}, binomial limit ${limit})`);
    expect(limit).toBe(21);
    expect(halts).toBeLessThanOrEqual(limit);
  }, 120_000);
});

describe('sample ratio mismatch on any split (planned 50/50, default settings)', () => {
  const RUNS = 50;
  // Control and one treatment, planned 50/50, one guardrail: SRM runs at its default share, 0.01.
  const definition = { ...wideDesignDefinition(1, 1, 10_000), id: 'split' };

  for (const split of [[1, 0], [0, 1], [0.97, 0.03]]) {
    it(`halts every run of an actual ${split.map((s) => s * 100).join('/')} split, median under 1,000 users`, () => {
      const outcomes = simulateRuns({ published: publish(definition), actualSplit: split, lookEvery: 10, maxUsers: 2_000 }, evaluate, RUNS, 77);
      const at = outcomes.map((o) => o.haltedAt);
      expect(at.filter((n) => n === null)).toEqual([]);
      expect(new Set(outcomes.map((o) => o.type))).toEqual(new Set(['SAMPLE_RATIO_MISMATCH']));
      const users = at as number[];
      console.info(`${split.join('/')}: halted in ${RUNS}/${RUNS} runs, median ${median(users)} users (max ${Math.max(...users)})`);
      expect(median(users)).toBeLessThan(1_000);
    });
  }
});

describe('the binomial limit', () => {
  it('matches scipy.stats.binom (test/unit/reference/guard_simulation.py)', () => {
    // binom.sf(k − 1, 300, 0.05) ≤ 0.001 first at k = 29: 28 halts is the largest count consistent with 0.05.
    expect(binomialUpperLimit(300, 0.05, 0.001)).toBe(28);
    expect(binomialUpperLimit(400, 0.05, 0.001)).toBe(35);
    expect(binomialUpperLimit(200, 0.05, 0.01)).toBe(18);
    expect(binomialUpperLimit(200, 0.05, 0.001)).toBe(21);
  });
});
