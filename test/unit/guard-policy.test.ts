import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { checkActions, decisionLevels } from '../../services/common/guardPolicy.ts';
import { evaluateExperiment } from '../../services/guard/evaluate.ts';
import { emptyExperimentState } from '../../services/guard/experimentState.ts';
import { wideDesignDefinition } from '../support/guardSimulation.ts';

// The budget rule of services/common/guardPolicy.ts, by hand: SRM a fifth, the rest split
// equally over guardrails × treatments; warnings spend nothing; legacy levels stand outside.
const wide = (changes: Record<string, unknown> = {}) => parseDefinition({ ...wideDesignDefinition(3, 10, 1_000), ...changes }, 'test');

describe('the false-halt budget', () => {
  it('splits the default 0.05: SRM 0.01, each of 30 guardrail tests 0.04 / 30; the levels add up to the budget', () => {
    const levels = decisionLevels(wide());
    expect(levels).toMatchObject({ budget: 0.05, guardrailTests: 30, srm: { source: 'budget', spends: true }, guardrail: { source: 'budget', spends: true } });
    expect(levels.srm.alpha).toBeCloseTo(0.01, 15);
    expect(levels.guardrail.alpha).toBeCloseTo(0.04 / 30, 15);
    expect(levels.srm.alpha + 30 * levels.guardrail.alpha).toBeCloseTo(0.05, 15);
  });

  it('gives all of it to the one kind that halts; a warning check runs at its nominal share and spends nothing', () => {
    const srmWarns = decisionLevels(wide({ falseHaltBudget: 0.1, checks: { srm: 'warn' } }));
    expect(srmWarns.guardrail.alpha).toBeCloseTo(0.1 / 30, 15);
    expect(srmWarns.srm).toMatchObject({ spends: false });
    expect(srmWarns.srm.alpha).toBeCloseTo(0.02, 15);
    const noGuardrails = decisionLevels(parseDefinition({ ...wideDesignDefinition(1, 0, 100) }, 'test'));
    expect(noGuardrails.srm.alpha).toBe(0.05);
  });

  it('uses legacy srmThreshold as it is and guardrailAlpha as the two-sided level it was (half on the harmful side), outside the budget', () => {
    const legacy = decisionLevels(wide({ srmThreshold: 0.001, guardrailAlpha: 0.05 }));
    expect(legacy.srm).toEqual({ alpha: 0.001, source: 'srmThreshold', spends: true });
    expect(legacy.guardrail).toEqual({ alpha: 0.025, source: 'guardrailAlpha', spends: true });
    // Only SRM legacy: the guardrails share the whole budget.
    expect(decisionLevels(wide({ srmThreshold: 0.001 })).guardrail.alpha).toBeCloseTo(0.05 / 30, 15);
  });
});

describe('actions per check', () => {
  it('defaults to today: statistical checks halt, data-quality ones warn', () => {
    expect(checkActions(wide())).toEqual({ srm: 'halt', guardrails: 'halt', usersInTwoVariants: 'warn', rateCollapse: 'warn', noTraffic: 'warn' });
  });

  it('a check set to warn raises an anomaly without a halt; one set to halt halts', () => {
    const d = parseDefinition({ ...wideDesignDefinition(1, 1, 1_000), checks: { srm: 'warn', usersInTwoVariants: 'halt' } }, 'test');
    const s = emptyExperimentState('wide');
    s.variants.control = { users: 900, conflicts: 30, metrics: {}, exposuresByMinute: {} };
    s.variants.t1 = { users: 100, conflicts: 0, metrics: {}, exposuresByMinute: {} };
    const signals = evaluateExperiment(s, { experimentId: 'wide', version: 1, appliedAt: 0, definition: d });
    expect(signals.map((x) => [x.type, x.halt, x.severity])).toEqual([['SAMPLE_RATIO_MISMATCH', false, 'warning'], ['USERS_IN_TWO_VARIANTS', true, 'critical']]);
    expect(signals[0]!.evidence).toMatchObject({ level: { spends: false } });
  });

  it('refuses an unknown check or action', () => {
    expect(() => parseDefinition({ ...wideDesignDefinition(1, 1, 1_000), checks: { srm: 'maybe' } }, 'test')).toThrow(/checks\.srm/);
    expect(() => parseDefinition({ ...wideDesignDefinition(1, 1, 1_000), checks: { latency: 'halt' } }, 'test')).toThrow(/unknown field/);
  });
});
