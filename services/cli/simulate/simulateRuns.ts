import type { ExperimentDelta, MinuteBucket, VariantDelta } from '../../common/aggregateDelta.ts';
import { allMetrics, controlVariant } from '../../common/experimentDefinition.ts';
import { seededRandom } from '../../common/random.ts';
import { evaluateExperiment } from '../../guard/evaluate.ts';
import { emptyExperimentState, mergeDelta } from '../../guard/experimentState.ts';
import { meanShift, ratioDraw, valueDraw, type RatioValue, type ValueDraw } from './metricModels.ts';
import type { SimulationPlan } from './simulateFlags.ts';

/**
 * The run loop of `expctl simulate`: simulated users arrive one by one, each assigned a
 * variant by the actual weights and given a value of every metric; every `lookEvery` users
 * (and after the last) their changes become one aggregate delta, merged into the guard's own
 * totals by the guard's own `mergeDelta`, and the guard's own `evaluateExperiment` decides.
 * So the simulator runs whatever checks the guard runs, on the state the guard would hold.
 *
 * Like the guard, each incident is raised once per run (recorded in the state's incidents).
 * A run ends at the first signal with `halt: true`; warnings raised until then are counted.
 * Deterministic: run r draws from its own generator, seeded from (seed, r).
 */
export interface RunOutcome {
  /** Users (all variants) when the run halted; null if it never did. */
  usersAtHalt: number | null;
  /** The halting signal (the first one, in the guard's order, at the halting look). */
  halt: { type: string; incident: string } | null;
  /** Types of the warnings raised, once per incident, until the run halted or ended. */
  warnings: string[];
  /** Parts of deltas mergeDelta left out and signals evaluateExperiment withheld as not finite (0 unless a baseline is extreme). */
  numbersLeftOut: number;
}

const MINUTE_MS = 60_000;
const STATS = 7; // sum, sumSquares, conversions, events, sumY, sumSquaresY, sumXY

interface Model {
  variants: string[];
  /** cap: a sum metric's cap on the user's total (∞ without one). */
  metrics: { name: string; kind: 'conversion' | 'sum' | 'ratio'; cap: number }[];
  /** draws[v][m]: a user's value of metric m in variant v (x and y of a ratio metric). */
  draws: UserDraw[][];
  /** Cumulative actual weights, for assignment. */
  cumulative: number[];
  /** The variant given when rounding leaves a draw past the last cumulative weight. */
  lastWithWeight: number;
}

/** Runs every run of the plan; `onRunDone(done, total)` after each (for progress). */
export function simulateRuns(plan: SimulationPlan, onRunDone: (done: number, total: number) => void = () => {}): RunOutcome[] {
  const model = buildModel(plan);
  const outcomes: RunOutcome[] = [];
  for (let run = 0; run < plan.runs; run++) {
    outcomes.push(simulateRun(plan, model, run));
    onRunDone(run + 1, plan.runs);
  }
  return outcomes;
}

function buildModel(plan: SimulationPlan): Model {
  const { definition } = plan.published;
  const control = controlVariant(definition);
  const variants = definition.variants.map((v) => v.id);
  const metrics = allMetrics(definition).map((m) => ({ name: m.name, kind: m.type, cap: m.type === 'sum' ? (m.cap?.upper ?? Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY }));
  const draws = variants.map((variant) =>
    metrics.map(({ name }): UserDraw => {
      const baseline = plan.baselines[name]!;
      const effect = variant === control ? undefined : plan.effects.find((e) => e.metric === name);
      const shift = meanShift(baseline, effect);
      if (baseline.type === 'ratio') return { ratio: ratioDraw(name, baseline, shift) };
      return { value: valueDraw(name, baseline, shift) };
    }),
  );
  let sum = 0;
  const cumulative = plan.weights.map((w) => (sum += w));
  const lastWithWeight = plan.weights.reduce((last, w, i) => (w > 0 ? i : last), 0);
  return { variants, metrics, draws, cumulative, lastWithWeight };
}

/** A 32-bit seed per run from the user's seed and the run number (a murmur3-style finaliser), so runs do not share streams. */
export function runSeed(seed: number, run: number): number {
  let h = (seed ^ Math.imul(run + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function simulateRun(plan: SimulationPlan, model: Model, run: number): RunOutcome {
  const random = seededRandom(runSeed(plan.seed, run));
  const { published } = plan;
  const state = emptyExperimentState(published.experimentId);
  const V = model.variants.length;
  const M = model.metrics.length;
  const look = { users: new Float64Array(V), stats: new Float64Array(V * M * STATS), minutes: new Map<number, Float64Array>() };
  const outcome: RunOutcome = { usersAtHalt: null, halt: null, warnings: [], numbersLeftOut: 0 };
  const withheld = () => void (outcome.numbersLeftOut += 1);
  const ratio: RatioValue = { x: 0, y: 0 };

  for (let user = 1; user <= plan.users; user++) {
    const v = assignVariant(model, random());
    look.users[v]! += 1;
    const minute = Math.floor((user - 1) / plan.usersPerMinute) * MINUTE_MS;
    let bucket = look.minutes.get(minute);
    if (!bucket) look.minutes.set(minute, (bucket = new Float64Array(V)));
    bucket[v]! += 1;
    const draws = model.draws[v]!;
    for (let m = 0; m < M; m++) {
      const draw = draws[m]!;
      const at = (v * M + m) * STATS;
      if (draw.ratio) {
        // A ratio metric's user has one denominator event per unit and one numerator event with their total (none without units).
        draw.ratio(random, ratio);
        if (ratio.y === 0) continue;
        look.stats[at]! += ratio.x;
        look.stats[at + 1]! += ratio.x * ratio.x;
        look.stats[at + 3]! += ratio.y + 1;
        look.stats[at + 4]! += ratio.y;
        look.stats[at + 5]! += ratio.y * ratio.y;
        look.stats[at + 6]! += ratio.x * ratio.y;
        continue;
      }
      const x = Math.min(draw.value(random), model.metrics[m]!.cap);
      // A conversion metric's user has an event only if they converted; a sum metric's user has one event with their total.
      const conversion = model.metrics[m]!.kind === 'conversion';
      if (conversion && x === 0) continue;
      look.stats[at]! += x;
      look.stats[at + 1]! += x * x;
      look.stats[at + 2]! += conversion ? 1 : 0;
      look.stats[at + 3]! += 1;
    }
    if (user % plan.lookEvery !== 0 && user !== plan.users) continue;

    outcome.numbersLeftOut += mergeDelta(state, lookDelta(published.experimentId, model, look)).length;
    look.users.fill(0);
    look.stats.fill(0);
    look.minutes.clear();
    for (const signal of evaluateExperiment(state, published, withheld)) {
      state.incidents[signal.incident] = { raisedAt: user, halted: signal.halt, definitionVersion: published.version };
      if (!signal.halt) outcome.warnings.push(signal.type);
      else if (!outcome.halt) outcome.halt = { type: signal.type, incident: signal.incident };
    }
    if (outcome.halt) {
      outcome.usersAtHalt = user;
      break;
    }
  }
  return outcome;
}

/** A metric's draw: a value (sum and conversion metrics) or a ratio metric's x and y. */
type UserDraw = { value: ValueDraw; ratio?: undefined } | { ratio: (random: () => number, out: RatioValue) => void; value?: undefined };

function assignVariant(model: Model, u: number): number {
  for (let i = 0; i < model.cumulative.length; i++) if (u < model.cumulative[i]!) return i;
  return model.lastWithWeight;
}

/** One look's users as the aggregator would emit them: the variants and metrics that changed, and the exposures per minute. */
function lookDelta(experimentId: string, model: Model, look: { users: Float64Array; stats: Float64Array; minutes: Map<number, Float64Array> }): ExperimentDelta {
  const M = model.metrics.length;
  const variants: VariantDelta[] = [];
  model.variants.forEach((variantId, v) => {
    const metrics = model.metrics.flatMap(({ name }, m) => {
      const at = (v * M + m) * STATS;
      const s = look.stats;
      return s[at + 3]! > 0 ? [{ metric: name, sum: s[at]!, sumSquares: s[at + 1]!, conversions: s[at + 2]!, events: s[at + 3]!, sumY: s[at + 4]!, sumSquaresY: s[at + 5]!, sumXY: s[at + 6]! }] : [];
    });
    if (look.users[v]! > 0 || metrics.length > 0) variants.push({ variantId, exposedUsers: look.users[v]!, conflicts: 0, metrics });
  });
  const buckets: MinuteBucket[] = [];
  for (const [minute, counts] of look.minutes) {
    model.variants.forEach((variantId, v) => {
      if (counts[v]! > 0) buckets.push({ minute, variantId, metric: null, count: counts[v]!, sum: 0 });
    });
  }
  return { experimentId, definitionVersion: 1, variants, buckets };
}
