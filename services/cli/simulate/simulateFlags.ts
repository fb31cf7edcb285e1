import { allMetrics, type ExperimentDefinition, type PublishedDefinition } from '../../common/experimentDefinition.ts';
import { DEFAULT_BASELINES, drawsPerUser, meanShift, parseBaseline, parseEffect, usage, valueDraw, type Baseline, type Effect } from './metricModels.ts';

/**
 * The flags of `expctl simulate`, as hostile input: every number finite and bounded, every
 * list capped, errors naming the flag (exit status 2). Pure: strings in, a plan out.
 */
export const SIMULATE_LIMITS = {
  runs: { min: 1, max: 10_000, default: 200 },
  users: { min: 1, max: 1_000_000, default: 10_000 },
  lookEvery: { min: 1, max: 1_000_000, default: 100 },
  /** Looks per run: --users / --look-every, rounded up. */
  looks: 10_000,
  /** Values drawn over all runs, --runs × --users × (metrics + 1 for the variant): about 10 s per 100 million. */
  draws: 500_000_000,
  /** The guard's decisions over all runs, --runs × looks per run: 0.1 to 0.5 ms each (more for more variants × guardrails). */
  decisions: 250_000,
  /** Arrival rate, for the per-minute exposure buckets the rate checks read. */
  usersPerMinute: { min: 1, max: 1_000_000, default: 1_000 },
  seed: { min: 0, max: 2 ** 32 - 1, default: 1 },
  weightsText: 1_000,
  /** How far the actual weights may sum from 1 (they are then scaled to sum to 1 exactly). */
  weightsSumSlack: 1e-3,
} as const;

export interface SimulateFlags {
  runs?: string;
  users?: string;
  lookEvery?: string;
  seed?: string;
  usersPerMinute?: string;
  weights?: string;
  effect?: string[];
  baseline?: string[];
}

export interface SimulationPlan {
  published: PublishedDefinition;
  runs: number;
  users: number;
  lookEvery: number;
  seed: number;
  usersPerMinute: number;
  /** The actual split, in the definition's variant order, summing to 1 (a variant may get 0). */
  weights: number[];
  /** Every metric of the definition, with its baseline. */
  baselines: Record<string, Baseline>;
  /** At most one per metric, applied to every treatment variant. */
  effects: Effect[];
}

export function parseSimulateFlags(definition: ExperimentDefinition, flags: SimulateFlags): SimulationPlan {
  const L = SIMULATE_LIMITS;
  const runs = integer('--runs', flags.runs, L.runs);
  const users = integer('--users', flags.users, L.users);
  const lookEvery = integer('--look-every', flags.lookEvery, L.lookEvery);
  if (lookEvery > users) throw usage('--look-every', `must not exceed --users (${users}), got ${lookEvery}`);
  const looks = Math.ceil(users / lookEvery);
  if (looks > L.looks) throw usage('--look-every', `gives ${looks} looks per run (--users ${users} / --look-every ${lookEvery}); at most ${L.looks}: look less often`);
  if (runs * looks > L.decisions) throw usage('--runs', `× looks per run is at most ${L.decisions.toLocaleString('en-US')} guard decisions (got ${runs} × ${looks}); lower --runs or raise --look-every`);
  const metrics = allMetrics(definition);
  const baselines: Record<string, Baseline> = Object.fromEntries(metrics.map((m) => [m.name, DEFAULT_BASELINES[m.type]]));
  const overridden = new Set<string>();
  for (const text of capped('--baseline', flags.baseline, metrics.length)) {
    const { metric, baseline } = parseBaseline(text, metrics);
    if (overridden.has(metric)) throw usage('--baseline', `${metric} is given twice`);
    overridden.add(metric);
    baselines[metric] = baseline;
  }
  const perUser = 1 + metrics.reduce((n, m) => n + drawsPerUser(baselines[m.name]!), 0);
  const draws = runs * users * perUser;
  const what = perUser === metrics.length + 1 ? `(${metrics.length} metrics + 1)` : `(${perUser} values per user: the variant, each metric, a ratio metric's units)`;
  if (draws > L.draws) throw usage('--runs', `× --users × ${what} is at most ${L.draws.toLocaleString('en-US')} simulated values (got ${draws.toLocaleString('en-US')}); lower --runs or --users`);
  const effects: Effect[] = [];
  for (const text of capped('--effect', flags.effect, metrics.length)) {
    const effect = parseEffect(text, metrics);
    if (effects.some((e) => e.metric === effect.metric)) throw usage('--effect', `${effect.metric} is given twice`);
    effects.push(effect);
    // Refuses, before any run, a conversion rate the effect would move outside [0, 1].
    valueDraw(effect.metric, baselines[effect.metric]!, meanShift(baselines[effect.metric]!, effect));
  }
  return {
    published: { experimentId: definition.id, version: 1, appliedAt: 0, definition },
    runs,
    users,
    lookEvery,
    seed: integer('--seed', flags.seed, L.seed),
    usersPerMinute: integer('--users-per-minute', flags.usersPerMinute, L.usersPerMinute),
    weights: flags.weights === undefined ? definition.variants.map((v) => v.weight) : parseWeights(flags.weights, definition),
    baselines,
    effects,
  };
}

/** `--weights 0.97,0.03`: one per variant in definition order, each from 0 to 1, summing to 1 within 0.001 (then scaled to exactly 1). */
export function parseWeights(text: string, definition: ExperimentDefinition): number[] {
  const flag = '--weights';
  if (text.length > SIMULATE_LIMITS.weightsText) throw usage(flag, `is at most ${SIMULATE_LIMITS.weightsText} characters (got ${text.length})`);
  const parts = text.split(',');
  const ids = definition.variants.map((v) => v.id);
  if (parts.length !== ids.length) throw usage(flag, `needs one weight per variant, in order (${ids.join(', ')}): ${ids.length}, got ${parts.length}`);
  const weights = parts.map((part, i) => {
    const n = Number(part);
    if (part.trim() === '' || !Number.isFinite(n)) throw usage(flag, `${ids[i]}: '${part}' is not a finite number`);
    if (n < 0 || n > 1) throw usage(flag, `${ids[i]}: a weight is from 0 to 1, got ${n}`);
    return n;
  });
  const total = weights.reduce((a, b) => a + b, 0);
  if (Math.abs(total - 1) > SIMULATE_LIMITS.weightsSumSlack) throw usage(flag, `must sum to 1, they sum to ${total}`);
  return weights.map((w) => w / total);
}

function integer(flag: string, text: string | undefined, range: { min: number; max: number; default: number }): number {
  if (text === undefined) return range.default;
  const n = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(n) || n < range.min || n > range.max) throw usage(flag, `must be an integer from ${range.min} to ${range.max.toLocaleString('en-US')}, got '${text.length > 40 ? `${text.slice(0, 40)}…` : text}'`);
  return n;
}

/** A repeatable flag: at most one per metric. */
function capped(flag: string, values: string[] | undefined, max: number): string[] {
  const list = values ?? [];
  if (list.length > max) throw usage(flag, `is given at most once per metric (${max}), got ${list.length}`);
  return list;
}
