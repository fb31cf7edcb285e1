import { describe, expect, it } from 'vitest';
import { nearestRank, summarize, wilsonInterval } from '../../services/cli/simulate/simulationSummary.ts';
import type { RunOutcome } from '../../services/cli/simulate/simulateRuns.ts';

/**
 * [k, n, lower, upper]: the 95 % Wilson score interval from an independent computation,
 * test/unit/reference/wilson_interval.py (mpmath at 50 digits, each end a root of the score
 * test's boundary found by bisection, not the closed form). Checked to 1e-12 relative.
 */
const REFERENCE: [number, number, number, number][] = [
  [0, 200, 0.0, 0.018845326377266578],
  [1, 200, 0.00088316871560097796, 0.027773704397892934],
  [10, 200, 0.027382645600763923, 0.089578148138775997],
  [39, 200, 0.14605520534400511, 0.2554404437461275],
  [100, 200, 0.43136085960389186, 0.56863914039610814],
  [199, 200, 0.97222629560210707, 0.99911683128439902],
  [200, 200, 0.98115467362273342, 1.0],
  [3, 7, 0.15821985525146969, 0.74954163547234281],
  [0, 1, 0.0, 0.79345068562276261],
  [1, 1, 0.20654931437723739, 1.0],
  [5000, 10000, 0.49020206181540479, 0.50979793818459521],
  [12, 10000, 0.0006866043187699608, 0.0020964724558170112],
];

const close = (actual: number, expected: number) => expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-12 * Math.max(Math.abs(expected), 1e-3));

describe('the halt rate interval', () => {
  it.each(REFERENCE)('Wilson 95 %% for %i of %i matches the reference', (k, n, lower, upper) => {
    const [lo, hi] = wilsonInterval(k, n);
    close(lo, lower);
    close(hi, upper);
  });

  it('is exactly 0 at no successes and 1 at all, and refuses impossible counts', () => {
    expect(wilsonInterval(0, 50)[0]).toBe(0);
    expect(wilsonInterval(50, 50)[1]).toBe(1);
    expect(() => wilsonInterval(3, 2)).toThrow(RangeError);
    expect(() => wilsonInterval(0, 0)).toThrow(RangeError);
  });
});

describe('the summary', () => {
  it('takes percentiles by nearest rank', () => {
    const values = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000];
    expect(nearestRank(values, 0.5)).toBe(500);
    expect(nearestRank(values, 0.9)).toBe(900);
    expect(nearestRank([700], 0.9)).toBe(700);
    expect(nearestRank([100, 200, 300], 0.5)).toBe(200);
  });

  it('counts halts by their signal and incident, warnings once per run and type, and users at halt only of halted runs', () => {
    const halted = (users: number, type: string, incident: string, warnings: string[] = []): RunOutcome => ({ usersAtHalt: users, halt: { type, incident }, warnings, numbersLeftOut: 0 });
    const quiet = (warnings: string[] = []): RunOutcome => ({ usersAtHalt: null, halt: null, warnings, numbersLeftOut: 0 });
    const summary = summarize([
      halted(300, 'SAMPLE_RATIO_MISMATCH', 'SRM'),
      halted(100, 'GUARDRAIL_REGRESSION', 'GUARDRAIL:latency:b', ['VARIANT_RATE_COLLAPSE', 'VARIANT_RATE_COLLAPSE']),
      halted(200, 'GUARDRAIL_REGRESSION', 'GUARDRAIL:latency:b'),
      quiet(['VARIANT_RATE_COLLAPSE']),
      quiet(),
    ]);
    expect(summary).toEqual({
      runs: 5,
      halted: 3,
      haltRate: 0.6,
      haltRateInterval95: wilsonInterval(3, 5),
      usersAtHalt: { median: 200, p90: 300 },
      byCheck: { SAMPLE_RATIO_MISMATCH: { halts: 1, warnings: 0 }, GUARDRAIL_REGRESSION: { halts: 2, warnings: 0 }, VARIANT_RATE_COLLAPSE: { halts: 0, warnings: 2 } },
      haltsByIncident: { 'GUARDRAIL:latency:b': 2, SRM: 1 },
      numbersLeftOut: 0,
    });
    expect(summarize([quiet(), quiet()]).usersAtHalt).toBeNull();
  });
});
