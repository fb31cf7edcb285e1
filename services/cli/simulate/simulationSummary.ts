import type { SimulationPlan } from './simulateFlags.ts';
import type { RunOutcome } from './simulateRuns.ts';
import { describeBaseline } from './metricModels.ts';

/**
 * What `expctl simulate` reports: the share of runs the guard halted with its 95 % Wilson
 * score interval, users at halt (median and 90th percentile, nearest rank), and per signal
 * type how many runs it halted and in how many it warned.
 */
export interface SimulationSummary {
  runs: number;
  halted: number;
  haltRate: number;
  haltRateInterval95: [number, number];
  usersAtHalt: { median: number; p90: number } | null;
  /** Per signal type: runs it halted (as the first halting signal), runs in which it warned. */
  byCheck: Record<string, { halts: number; warnings: number }>;
  /** Runs halted per incident (e.g. `GUARDRAIL:latency:treatment`), most first. */
  haltsByIncident: Record<string, number>;
  /** Numbers the guard's merge or evaluation left out as not finite, over all runs (0 unless a baseline is extreme). */
  numbersLeftOut: number;
}

/** z for a two-sided 95 % interval: the 0.975 quantile of the standard normal. */
const Z95 = 1.959963984540054;

/**
 * The Wilson score interval for k successes in n trials (Wilson 1927): the p whose score
 * test |k/n − p| ≤ z √(p(1 − p)/n) does not reject. Unlike the normal approximation it stays
 * in [0, 1] and is not empty at k = 0 or k = n.
 */
export function wilsonInterval(k: number, n: number, z = Z95): [number, number] {
  if (!(n > 0) || k < 0 || k > n) throw new RangeError(`wilsonInterval needs 0 ≤ k ≤ n and n > 0 (k ${k}, n ${n})`);
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const spread = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // The exact ends are 0 at k = 0 and 1 at k = n; rounding must not move them past.
  return [k === 0 ? 0 : Math.max(0, centre - spread), k === n ? 1 : Math.min(1, centre + spread)];
}

/** The q-quantile of ascending values by nearest rank: the ⌈q·n⌉-th smallest. */
export function nearestRank(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('nearestRank of no values');
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1]!;
}

export function summarize(outcomes: readonly RunOutcome[]): SimulationSummary {
  const runs = outcomes.length;
  const halts = outcomes.filter((o) => o.halt !== null);
  const atHalt = halts.map((o) => o.usersAtHalt!).sort((a, b) => a - b);
  const byCheck: SimulationSummary['byCheck'] = {};
  const entry = (type: string) => (byCheck[type] ??= { halts: 0, warnings: 0 });
  const incidents = new Map<string, number>();
  for (const o of outcomes) {
    if (o.halt) {
      entry(o.halt.type).halts += 1;
      incidents.set(o.halt.incident, (incidents.get(o.halt.incident) ?? 0) + 1);
    }
    for (const type of new Set(o.warnings)) entry(type).warnings += 1;
  }
  return {
    runs,
    halted: halts.length,
    haltRate: halts.length / runs,
    haltRateInterval95: wilsonInterval(halts.length, runs),
    usersAtHalt: atHalt.length === 0 ? null : { median: nearestRank(atHalt, 0.5), p90: nearestRank(atHalt, 0.9) },
    byCheck,
    haltsByIncident: Object.fromEntries([...incidents].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
    numbersLeftOut: outcomes.reduce((n, o) => n + o.numbersLeftOut, 0),
  };
}

const percent = (x: number) => `${(x * 100).toFixed(1)} %`;

/** The human-readable report: the design simulated, then the figures. */
export function formatSummary(plan: SimulationPlan, s: SimulationSummary): string[] {
  const { definition } = plan.published;
  const split = definition.variants.map((v, i) => `${v.id} ${percent(plan.weights[i]!)} (planned ${percent(v.weight)})`).join(', ');
  const lines = [
    `${definition.id}: ${s.runs} runs of ${plan.users.toLocaleString('en-US')} users, the guard deciding every ${plan.lookEvery} users (seed ${plan.seed})`,
    `  split: ${split}`,
    ...Object.entries(plan.baselines).map(([metric, b]) => {
      const effect = plan.effects.find((e) => e.metric === metric);
      return `  ${metric}: ${describeBaseline(b)}${effect ? `; treatment effect ${effect.text}` : ''}`;
    }),
    `halted: ${s.halted} of ${s.runs} runs = ${percent(s.haltRate)} (95 % interval ${percent(s.haltRateInterval95[0])} to ${percent(s.haltRateInterval95[1])})`,
    s.usersAtHalt ? `users at halt: median ${s.usersAtHalt.median.toLocaleString('en-US')}, 90th percentile ${s.usersAtHalt.p90.toLocaleString('en-US')}` : 'users at halt: none halted',
  ];
  const checks = Object.entries(s.byCheck);
  if (checks.length === 0) lines.push('signals: none');
  for (const [type, c] of checks) lines.push(`  ${type}: halted ${c.halts} run(s), warned in ${c.warnings}`);
  const incidents = Object.entries(s.haltsByIncident);
  if (incidents.length > 1) lines.push(`halts by incident: ${incidents.slice(0, 10).map(([i, n]) => `${i} ${n}`).join(', ')}${incidents.length > 10 ? `, … ${incidents.length - 10} more` : ''}`);
  if (s.numbersLeftOut > 0) lines.push(`note: ${s.numbersLeftOut} delta part(s) or signal(s) were left out as not finite: the baselines are too extreme for doubles`);
  return lines;
}
