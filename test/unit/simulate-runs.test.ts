import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { parseSimulateFlags, type SimulateFlags } from '../../services/cli/simulate/simulateFlags.ts';
import { runSeed, simulateRuns } from '../../services/cli/simulate/simulateRuns.ts';
import { summarize } from '../../services/cli/simulate/simulationSummary.ts';

/**
 * The run loop on the guard's real decision code. Rates here are structural (every run, no
 * run, at most a generous share), not exact, so they hold whatever the guard's tests become.
 */
const definition = parseDefinition({
  id: 'sim', name: 'sim', hypothesis: 'h', owner: 'o',
  variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
  primaryMetrics: [{ name: 'purchase', type: 'conversion' }],
  guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.05 } }],
  minimumSampleSize: 100, plannedSampleSize: 2_000,
}, 'test');

const run = (flags: SimulateFlags) => summarize(simulateRuns(parseSimulateFlags(definition, { runs: '40', users: '4000', lookEvery: '100', ...flags })));

describe('expctl simulate runs', () => {
  it('is deterministic for a seed, and another seed gives other runs', () => {
    const flags = { runs: '30', users: '3000', effect: ['latency=0.1sd'], seed: '7' };
    const plan = parseSimulateFlags(definition, flags);
    const first = simulateRuns(plan);
    expect(simulateRuns(plan)).toEqual(first);
    expect(simulateRuns(parseSimulateFlags(definition, { ...flags, seed: '8' }))).not.toEqual(first);
    expect(new Set(Array.from({ length: 1_000 }, (_, r) => runSeed(7, r))).size).toBe(1_000);
  });

  it('reports progress after every run', () => {
    const seen: string[] = [];
    simulateRuns(parseSimulateFlags(definition, { runs: '3', users: '200' }), (done, total) => seen.push(`${done}/${total}`));
    expect(seen).toEqual(['1/3', '2/3', '3/3']);
  });

  it('A/A: halts in few runs', () => {
    const summary = run({});
    expect(summary.runs).toBe(40);
    expect(summary.halted).toBeLessThanOrEqual(8);
  });

  it('a 70/30 split of a planned 50/50 halts every run on the sample ratio, soon after the minimum sample', () => {
    const summary = run({ weights: '0.7,0.3' });
    expect(summary).toMatchObject({ halted: 40, haltRate: 1 });
    expect(summary.byCheck.SAMPLE_RATIO_MISMATCH?.halts).toBe(40);
    expect(summary.usersAtHalt!.p90).toBeLessThanOrEqual(1_500);
  });

  it('a treatment 30 % slower halts every run on the guardrail; 30 % faster never does (only the harmful side counts)', () => {
    const slower = run({ effect: ['latency=30%'] });
    expect(slower).toMatchObject({ halted: 40, haltsByIncident: { 'GUARDRAIL:latency:treatment': 40 } });
    expect(slower.byCheck.GUARDRAIL_REGRESSION?.halts).toBe(40);
    expect(run({ effect: ['latency=-30%'] }).byCheck.GUARDRAIL_REGRESSION).toBeUndefined();
  });

  it('looks only every --look-every users and at the last user: users at halt are on that grid', () => {
    const summary = run({ weights: '0.8,0.2', users: '1050', lookEvery: '300' });
    for (const users of [summary.usersAtHalt!.median, summary.usersAtHalt!.p90]) expect(users % 300 === 0 || users === 1050).toBe(true);
  });

  it('no run decides before the minimum sample size (here: more than all the users)', () => {
    const big = parseDefinition({ ...definition, minimumSampleSize: 2_000 }, 'test');
    const summary = summarize(simulateRuns(parseSimulateFlags(big, { runs: '20', users: '1900', weights: '0.7,0.3', effect: ['latency=30%'] })));
    expect(summary.halted).toBe(0);
  });
});
